// Package replica lets several pdvault hosts share vaults through
// S3-compatible object storage (docs/operations.md, "Beyond one host"):
// each open vault's database is replicated continuously by Litestream,
// embedded as a library, and served under a lease kept in the same bucket,
// so that one host at a time writes it. No consensus of our own: the
// object store's conditional writes (If-None-Match, If-Match) decide who
// holds a lease, and Litestream's restore brings a vault up elsewhere.
//
// Layout under the configured prefix, per vault:
//
//	<prefix>/<vault>/lease.json   who holds it, epoch, expiry, generation
//	<prefix>/<vault>/handover     the unsealed state left for the next host (sealed)
//	<prefix>/<vault>/db/...       Litestream's replica (generations, snapshots, WAL)
package replica

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/awserr"
	"github.com/aws/aws-sdk-go/aws/credentials"
	"github.com/aws/aws-sdk-go/aws/request"
	"github.com/aws/aws-sdk-go/aws/session"
	"github.com/aws/aws-sdk-go/service/s3"
)

// Config says where the replicas and leases live and how this host
// behaves under them.
type Config struct {
	Endpoint  string // e.g. http://127.0.0.1:7070; empty: AWS S3
	Region    string // default us-east-1
	Bucket    string
	Prefix    string // key prefix, no leading or trailing slash
	AccessKey string
	SecretKey string
	// PathStyle addresses the bucket in the path (most S3-compatible
	// servers) instead of the host name.
	PathStyle bool

	// Holder names this host in leases; hosts sharing a bucket need
	// distinct names. Default: the machine's host name.
	Holder string
	// LeaseTTL is how long a lease lasts without renewal (default 30s).
	// The holder renews every third of it and stops writing once two
	// thirds have passed since its last successful renewal was sent, so
	// hosts' clocks must agree within a third of it.
	LeaseTTL time.Duration
	// SyncInterval is how often Litestream ships new WAL frames (default
	// 1s): the window of acknowledged writes a lost host can take with it.
	SyncInterval time.Duration
	// MaxLag bounds that window when writes come faster than the replica
	// takes them: while the oldest write not yet in the replica is older
	// than MaxLag, commits are refused (vault.ErrReplicaBehind) until it
	// catches up. Default 5s; at least twice SyncInterval; negative: no
	// bound.
	MaxLag time.Duration
	// Confirm makes replication synchronous: a request that committed
	// something is answered only once the commit is in the replica
	// (confirm.go), so a lost host takes no acknowledged write with it.
	// Each answer then waits for one upload, shared by the requests that
	// wait at the same time.
	Confirm bool
	// ConfirmTimeout bounds that wait (default 5s): a replica that does not
	// answer turns into refused answers (vault.ErrUnconfirmed), not
	// requests that hang.
	ConfirmTimeout time.Duration
	// HandoverKey (32 bytes), shared by the operator's hosts, seals a
	// vault's unsealed state when one host hands it to another, so a moved
	// vault needs no new unlock by its owner. Nil: moved vaults arrive
	// sealed.
	HandoverKey []byte
	// HandoverTTL bounds how long a handed-over state is accepted
	// (default 5 minutes).
	HandoverTTL time.Duration

	Logger *slog.Logger
}

// ParseURL reads a replica location: s3://BUCKET[/PREFIX][?endpoint=URL&region=R&path-style=true].
// Credentials come from elsewhere (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
func ParseURL(s string) (Config, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return Config{}, fmt.Errorf("replica location %q: want s3://BUCKET[/PREFIX][?endpoint=URL]", s)
	}
	c := Config{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/"), Endpoint: u.Query().Get("endpoint"), Region: u.Query().Get("region")}
	for k := range u.Query() {
		if k != "endpoint" && k != "region" && k != "path-style" {
			return Config{}, fmt.Errorf("replica location %q: unknown parameter %q (endpoint, region, path-style)", s, k)
		}
	}
	if ps := u.Query().Get("path-style"); ps != "" {
		if c.PathStyle, err = strconv.ParseBool(ps); err != nil {
			return Config{}, fmt.Errorf("replica location %q: path-style must be true or false", s)
		}
	} else {
		c.PathStyle = c.Endpoint != "" // S3-compatible servers mostly want it
	}
	if c.Endpoint != "" {
		if e, err := url.Parse(c.Endpoint); err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
			return Config{}, fmt.Errorf("replica location %q: endpoint must be an http(s) URL", s)
		}
	}
	return c, nil
}

// Store is the object storage of a set of hosts: it implements
// host.Placement.
type Store struct {
	cfg Config
	s3  *s3.S3
	log *slog.Logger
}

// New checks cfg and connects (lazily: nothing is sent until a vault is
// claimed).
func New(cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("replica: no bucket")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Holder == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return nil, errors.New("replica: no holder name and no host name")
		}
		cfg.Holder = h
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 30 * time.Second
	}
	if cfg.LeaseTTL < 3*time.Second {
		return nil, errors.New("replica: a lease shorter than 3s cannot be renewed in time")
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = time.Second
	}
	if cfg.MaxLag == 0 {
		cfg.MaxLag = max(5*time.Second, 2*cfg.SyncInterval)
	}
	if cfg.MaxLag > 0 && cfg.MaxLag < 2*cfg.SyncInterval {
		return nil, errors.New("replica: the bound on replication lag must be at least twice the sync interval")
	}
	if cfg.ConfirmTimeout <= 0 {
		cfg.ConfirmTimeout = 5 * time.Second
	}
	if cfg.HandoverKey != nil && len(cfg.HandoverKey) != 32 {
		return nil, errors.New("replica: the handover key must be 32 bytes")
	}
	if cfg.HandoverTTL <= 0 {
		cfg.HandoverTTL = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	sess, err := session.NewSession(cfg.awsConfig())
	if err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	return &Store{cfg: cfg, s3: s3.New(sess), log: cfg.Logger.With("component", "replica")}, nil
}

func (c Config) awsConfig() *aws.Config {
	ac := &aws.Config{Region: aws.String(c.Region), HTTPClient: &http.Client{Timeout: 5 * time.Minute}}
	if c.AccessKey != "" || c.SecretKey != "" {
		ac.Credentials = credentials.NewStaticCredentials(c.AccessKey, c.SecretKey, "")
	}
	if c.Endpoint != "" {
		ac.Endpoint = aws.String(c.Endpoint)
	}
	ac.S3ForcePathStyle = aws.Bool(c.PathStyle)
	return ac
}

// key is the object key of a vault's file.
func (s *Store) key(vaultName string, parts ...string) string {
	return path.Join(append([]string{s.cfg.Prefix, vaultName}, parts...)...)
}

// errConflict is a conditional write that lost: someone else wrote first.
var errConflict = errors.New("the object changed under a conditional write")

func statusOf(err error) int {
	var rf awserr.RequestFailure
	if errors.As(err, &rf) {
		return rf.StatusCode()
	}
	return 0
}

// get reads a small object: its body and ETag; a missing one gives nil.
func (s *Store) get(ctx context.Context, key string, max int64) ([]byte, string, error) {
	out, err := s.s3.GetObjectWithContext(ctx, &s3.GetObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key)})
	if err != nil {
		if statusOf(err) == http.StatusNotFound {
			return nil, "", nil
		}
		return nil, "", err
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, max+1))
	if err != nil {
		return nil, "", err
	}
	if int64(len(b)) > max {
		return nil, "", fmt.Errorf("object %s is larger than %d bytes", key, max)
	}
	return b, aws.StringValue(out.ETag), nil
}

// put writes a small object. ifMatch "": only if absent (If-None-Match: *);
// "-": unconditionally; else only if its ETag is still ifMatch. A lost
// condition gives errConflict.
func (s *Store) put(ctx context.Context, key string, body []byte, ifMatch string) (string, error) {
	var opts []request.Option
	switch ifMatch {
	case "":
		opts = append(opts, request.WithSetRequestHeaders(map[string]string{"If-None-Match": "*"}))
	case "-":
	default:
		opts = append(opts, request.WithSetRequestHeaders(map[string]string{"If-Match": ifMatch}))
	}
	out, err := s.s3.PutObjectWithContext(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentType: aws.String("application/octet-stream"),
	}, opts...)
	if err != nil {
		// 412: the condition failed; 409: a concurrent conditional write
		// to the same key (S3's ConditionalRequestConflict).
		if st := statusOf(err); st == http.StatusPreconditionFailed || st == http.StatusConflict {
			return "", errConflict
		}
		return "", err
	}
	return aws.StringValue(out.ETag), nil
}

func (s *Store) del(ctx context.Context, key string) error {
	_, err := s.s3.DeleteObjectWithContext(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key)})
	if err != nil && statusOf(err) != http.StatusNotFound {
		return err
	}
	return nil
}

// deleteAll removes every object of a vault but its lease, which the
// caller removes last.
func (s *Store) deleteAll(ctx context.Context, vaultName string) (int, error) {
	prefix := s.key(vaultName) + "/"
	n := 0
	var keys []*s3.ObjectIdentifier
	err := s.s3.ListObjectsV2PagesWithContext(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(s.cfg.Bucket), Prefix: aws.String(prefix)},
		func(page *s3.ListObjectsV2Output, _ bool) bool {
			for _, o := range page.Contents {
				if aws.StringValue(o.Key) != s.key(vaultName, leaseFile) {
					keys = append(keys, &s3.ObjectIdentifier{Key: o.Key})
				}
			}
			return true
		})
	if err != nil {
		return 0, err
	}
	for len(keys) > 0 {
		batch := keys[:min(len(keys), 1000)]
		keys = keys[len(batch):]
		out, err := s.s3.DeleteObjectsWithContext(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(s.cfg.Bucket),
			Delete: &s3.Delete{Objects: batch, Quiet: aws.Bool(true)}})
		if err != nil {
			return n, err
		}
		if len(out.Errors) > 0 {
			return n, fmt.Errorf("deleting %s: %s", aws.StringValue(out.Errors[0].Key), aws.StringValue(out.Errors[0].Message))
		}
		n += len(batch)
	}
	return n, nil
}

// Remaining counts the objects left of a vault (a check after erasure).
func (s *Store) Remaining(ctx context.Context, vaultName string) (int, error) {
	n := 0
	err := s.s3.ListObjectsV2PagesWithContext(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(s.cfg.Bucket), Prefix: aws.String(s.key(vaultName) + "/")},
		func(page *s3.ListObjectsV2Output, _ bool) bool { n += len(page.Contents); return true })
	return n, err
}

// The lease.

const leaseFile = "lease.json"

type leaseDoc struct {
	Holder  string    `json:"holder"`
	Epoch   int64     `json:"epoch"`
	Expires time.Time `json:"expires"`
	// Released: the holder closed the vault cleanly; anyone may take it.
	Released bool `json:"released,omitempty"`
	// Generation is the Litestream generation the holder replicates into:
	// the one the next holder restores from.
	Generation string `json:"generation,omitempty"`
}

func (s *Store) readLease(ctx context.Context, vaultName string) (*leaseDoc, string, error) {
	b, etag, err := s.get(ctx, s.key(vaultName, leaseFile), 4096)
	if err != nil || b == nil {
		return nil, "", err
	}
	var d leaseDoc
	if err := json.Unmarshal(b, &d); err != nil || d.Holder == "" || d.Epoch <= 0 {
		return nil, "", fmt.Errorf("the lease of %s is malformed", vaultName)
	}
	return &d, etag, nil
}

func (s *Store) writeLease(ctx context.Context, vaultName string, d leaseDoc, ifMatch string) (string, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return "", err
	}
	return s.put(ctx, s.key(vaultName, leaseFile), b, ifMatch)
}
