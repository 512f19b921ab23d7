package replica

import (
	"context"
	"net/http"
	"path"
	"strings"

	"github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/service/s3"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault/host"
)

// The hosts' shared domain book (host.DomainBook): one empty object per
// pair, <prefix>/_domains/<domain>/<vault>. A vault name never starts
// with "_", so the book cannot be taken for a vault; a pair is one PUT,
// HEAD or DELETE, and the whole book one listing, never a read per pair.

const domainsDir = "_domains"

func (s *Store) domainKey(domain, name string) (string, bool) {
	if !policy.ValidHostName(domain) || host.ValidName(name) != nil {
		return "", false
	}
	return path.Join(s.cfg.Prefix, domainsDir, domain, name), true
}

// PutDomain records that the named vault's owner chose domain.
func (s *Store) PutDomain(ctx context.Context, domain, name string) error {
	key, ok := s.domainKey(domain, name)
	if !ok {
		return host.ErrBadName
	}
	_, err := s.put(ctx, key, nil, "-")
	return err
}

// DeleteDomain strikes the pair.
func (s *Store) DeleteDomain(ctx context.Context, domain, name string) error {
	key, ok := s.domainKey(domain, name)
	if !ok {
		return host.ErrBadName
	}
	return s.del(ctx, key)
}

// HasDomain says whether the pair is recorded.
func (s *Store) HasDomain(ctx context.Context, domain, name string) (bool, error) {
	key, ok := s.domainKey(domain, name)
	if !ok {
		return false, nil
	}
	_, err := s.s3.HeadObjectWithContext(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key)})
	if statusOf(err) == http.StatusNotFound {
		return false, nil
	}
	return err == nil, err
}

// Domains lists the book, by domain (S3 lists keys in order).
func (s *Store) Domains(ctx context.Context) ([]host.DomainPair, error) {
	prefix := path.Join(s.cfg.Prefix, domainsDir) + "/"
	var out []host.DomainPair
	err := s.s3.ListObjectsV2PagesWithContext(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(s.cfg.Bucket), Prefix: aws.String(prefix)},
		func(page *s3.ListObjectsV2Output, _ bool) bool {
			for _, o := range page.Contents {
				domain, name, ok := strings.Cut(strings.TrimPrefix(aws.StringValue(o.Key), prefix), "/")
				if ok && policy.ValidHostName(domain) && host.ValidName(name) == nil {
					out = append(out, host.DomainPair{Domain: domain, Name: name})
				}
			}
			return true
		})
	return out, err
}

var _ host.DomainBook = (*Store)(nil)
