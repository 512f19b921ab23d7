package client

import (
	"context"
	"encoding/base64"
	"io"
	"mime"
	"net/http"
	"net/url"
	"time"
)

// ImportOptions says how the vault should read an uploaded file.
type ImportOptions struct {
	Name       string // the file's name, kept in each record's provenance
	Format     string // importer name; empty: detected from the content
	Collection string // overrides the importer's collection
	DryRun     bool   // parse and count, keep nothing
	// DiscardOriginal drops the file once its records are in; by default
	// the vault keeps it as an encrypted document (kind "import").
	DiscardOriginal bool
	// Map gives the importer's options, e.g. for CSV "date=Buchungstag,
	// amount=Betrag,decimal=comma" (docs/importers.md).
	Map string
}

// ImportResult is what an import did.
type ImportResult struct {
	File       string `json:"file"`
	Format     string `json:"format"`
	Collection string `json:"collection"`
	SHA256     string `json:"sha256"`
	Bytes      int64  `json:"bytes"`
	Added      int    `json:"added"`
	Duplicates int    `json:"duplicates"`
	Document   string `json:"document,omitempty"` // the kept source file's document id
	DryRun     bool   `json:"dry_run,omitempty"`
}

// ImportJob is an import's progress (GET /v1/owner/imports/{id}).
type ImportJob struct {
	ID       string        `json:"id"`
	File     string        `json:"file"`
	Format   string        `json:"format,omitempty"`
	State    string        `json:"state"` // uploading, importing, done, failed
	Bytes    int64         `json:"bytes"` // received (uploading) or read by the importer (importing)
	Total    int64         `json:"total,omitempty"`
	Items    int64         `json:"items"`
	Started  time.Time     `json:"started"`
	Finished *time.Time    `json:"finished,omitempty"`
	Result   *ImportResult `json:"result,omitempty"`
	Error    *Error        `json:"error,omitempty"`
}

// Running reports whether the import has not finished yet.
func (j ImportJob) Running() bool { return j.State == "uploading" || j.State == "importing" }

// ImportFormat describes one importer.
type ImportFormat struct {
	Name        string   `json:"name"`
	Version     string   `json:"version"`
	Description string   `json:"description"`
	Collections []string `json:"collections"`
	Extensions  []string `json:"extensions"`
}

// ImportData streams a file to POST /v1/owner/imports and returns when it
// is imported. sha256, if not nil, is the file's digest, sent as an RFC
// 9530 Content-Digest; the vault keeps nothing if the bytes it got do not
// match it.
func (o *Owner) ImportData(ctx context.Context, r io.Reader, sha256 []byte, opt ImportOptions) (ImportResult, error) {
	req, err := o.importRequest(ctx, r, sha256, opt)
	if err != nil {
		return ImportResult{}, err
	}
	// A large file takes longer than the client's usual timeout; the
	// context bounds it instead.
	var res ImportResult
	_, err = o.long().do(req, &res)
	return res, err
}

// StartImport streams a file and returns once the vault has stored it
// (Prefer: respond-async, RFC 7240); ImportJob then reports how the
// import goes. A dry run has finished when it returns.
func (o *Owner) StartImport(ctx context.Context, r io.Reader, sha256 []byte, opt ImportOptions) (ImportJob, error) {
	req, err := o.importRequest(ctx, r, sha256, opt)
	if err != nil {
		return ImportJob{}, err
	}
	req.Header.Set("Prefer", "respond-async")
	var j ImportJob
	_, err = o.long().do(req, &j)
	return j, err
}

// ImportJob reports one import; ImportJobs the recent ones, newest first.
func (o *Owner) ImportJob(ctx context.Context, id string) (ImportJob, error) {
	var j ImportJob
	err := o.send(ctx, http.MethodGet, "/v1/owner/imports/"+url.PathEscape(id), nil, &j)
	return j, err
}

func (o *Owner) ImportJobs(ctx context.Context) ([]ImportJob, error) {
	var out struct {
		Imports []ImportJob `json:"imports"`
	}
	err := o.send(ctx, http.MethodGet, "/v1/owner/imports", nil, &out)
	return out.Imports, err
}

func (o *Owner) importRequest(ctx context.Context, r io.Reader, sha256 []byte, opt ImportOptions) (*http.Request, error) {
	q := url.Values{}
	if opt.Format != "" {
		q.Set("format", opt.Format)
	}
	if opt.Collection != "" {
		q.Set("collection", opt.Collection)
	}
	if opt.DryRun {
		q.Set("dry_run", "true")
	}
	if opt.DiscardOriginal {
		q.Set("keep_original", "false")
	}
	if opt.Map != "" {
		q.Set("map", opt.Map)
	}
	path := "/v1/owner/imports"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.url+path, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+o.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/octet-stream")
	if sha256 != nil {
		req.Header.Set("Content-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sha256)+":")
	}
	if opt.Name != "" {
		req.Header.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": opt.Name}))
	}
	return req, nil
}

// ImportFormats lists the vault's importers.
func (o *Owner) ImportFormats(ctx context.Context) ([]ImportFormat, error) {
	var out struct {
		Formats []ImportFormat `json:"formats"`
	}
	err := o.send(ctx, http.MethodGet, "/v1/owner/imports/formats", nil, &out)
	return out.Formats, err
}
