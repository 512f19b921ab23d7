package client

import (
	"context"
	"encoding/base64"
	"io"
	"mime"
	"net/http"
	"net/url"
)

// ImportOptions says how the vault should read an uploaded file.
type ImportOptions struct {
	Name       string // the file's name, kept in each record's provenance
	Format     string // importer name; empty: detected from the content
	Collection string // overrides the importer's collection
	DryRun     bool   // parse and count, keep nothing
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
	DryRun     bool   `json:"dry_run,omitempty"`
}

// ImportFormat describes one importer.
type ImportFormat struct {
	Name        string   `json:"name"`
	Version     string   `json:"version"`
	Description string   `json:"description"`
	Collections []string `json:"collections"`
	Extensions  []string `json:"extensions"`
}

// ImportData streams a file to POST /v1/owner/imports. sha256 is the
// file's digest, sent as an RFC 9530 Content-Digest; the vault keeps
// nothing if the bytes it got do not match it.
func (o *Owner) ImportData(ctx context.Context, r io.Reader, sha256 []byte, opt ImportOptions) (ImportResult, error) {
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
	if opt.Map != "" {
		q.Set("map", opt.Map)
	}
	path := "/v1/owner/imports"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.url+path, r)
	if err != nil {
		return ImportResult{}, err
	}
	req.Header.Set("Authorization", "Bearer "+o.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sha256)+":")
	if opt.Name != "" {
		req.Header.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": opt.Name}))
	}
	// A large file takes longer than the client's usual timeout; the
	// context bounds it instead.
	var res ImportResult
	_, err = o.long().do(req, &res)
	return res, err
}

// ImportFormats lists the vault's importers.
func (o *Owner) ImportFormats(ctx context.Context) ([]ImportFormat, error) {
	var out struct {
		Formats []ImportFormat `json:"formats"`
	}
	err := o.send(ctx, http.MethodGet, "/v1/owner/imports/formats", nil, &out)
	return out.Formats, err
}
