package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
)

// DocumentOptions describes a document being added.
type DocumentOptions struct {
	FileName     string
	Title        string
	Kind         string // a lower-case word: contract, payslip, letter, ...
	Date         string // YYYY-MM-DD
	Counterparty string
	MediaType    string // empty: the vault names it from the first bytes
	SHA256       []byte // optional: sent as Content-Digest and checked
}

// DocumentMeta is a document's metadata record (docs/vocabulary.md). It
// mirrors vault.DocumentMeta on purpose: the client must not import package
// vault, which links SQLite.
type DocumentMeta struct {
	Title          string `json:"title,omitempty"`
	Kind           string `json:"kind,omitempty"`
	Date           string `json:"date,omitempty"`
	Counterparty   string `json:"counterparty,omitempty"`
	FileName       string `json:"fileName,omitempty"`
	EncodingFormat string `json:"encodingFormat"`
	ContentSize    int64  `json:"contentSize"`
	SHA256         string `json:"sha256"`
}

// Meta decodes a documents record.
func (r Record) Meta() (DocumentMeta, error) {
	var m DocumentMeta
	err := json.Unmarshal(r.Data, &m)
	return m, err
}

// AddDocument streams r to POST /v1/owner/documents.
func (o *Owner) AddDocument(ctx context.Context, r io.Reader, opt DocumentOptions) (Record, error) {
	q := url.Values{}
	for k, v := range map[string]string{"title": opt.Title, "kind": opt.Kind, "date": opt.Date, "counterparty": opt.Counterparty} {
		if v != "" {
			q.Set(k, v)
		}
	}
	path := "/v1/owner/documents"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.url+path, r)
	if err != nil {
		return Record{}, err
	}
	req.Header.Set("Authorization", "Bearer "+o.token)
	req.Header.Set("Accept", "application/json")
	mt := opt.MediaType
	if mt == "" {
		mt = "application/octet-stream"
	}
	req.Header.Set("Content-Type", mt)
	if opt.SHA256 != nil {
		req.Header.Set("Content-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(opt.SHA256)+":")
	}
	if opt.FileName != "" {
		req.Header.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": opt.FileName}))
	}
	var rec Record
	_, err = o.long().do(req, &rec)
	return rec, err
}

// long is the owner's client without the usual timeout, for transfers
// whose length the context bounds.
func (o *Owner) long() base {
	hc := *o.http
	hc.Timeout = 0
	b := o.base
	b.http = &hc
	return b
}

// Documents lists the documents' metadata records.
func (o *Owner) Documents(ctx context.Context, limit int, cursor string) (Page, error) {
	var p Page
	err := o.send(ctx, http.MethodGet, paged("/v1/owner/documents", limit, cursor), nil, &p)
	return p, err
}

// Document returns one document's metadata record.
func (o *Owner) Document(ctx context.Context, id string) (Record, error) {
	var r Record
	err := o.send(ctx, http.MethodGet, "/v1/owner/documents/"+url.PathEscape(id), nil, &r)
	return r, err
}

// DeleteDocument removes a document, metadata and bytes.
func (o *Owner) DeleteDocument(ctx context.Context, id string) error {
	return o.send(ctx, http.MethodDelete, "/v1/owner/documents/"+url.PathEscape(id), nil, nil)
}

// DocumentContent copies a document's bytes to w.
func (o *Owner) DocumentContent(ctx context.Context, id string, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.url+"/v1/owner/documents/"+url.PathEscape(id)+"/content", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+o.token)
	res, err := o.long().http.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if err := errorOf(res); err != nil {
		return 0, err
	}
	n, err := io.Copy(w, res.Body)
	if err == nil && res.ContentLength >= 0 && n != res.ContentLength {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// errorOf turns a non-2xx answer into *Error.
func errorOf(res *http.Response) error {
	if res.StatusCode < 300 {
		return nil
	}
	e := &Error{Status: res.StatusCode}
	if json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(e) != nil || e.Code == "" {
		e.Code, e.Description = "http_error", http.StatusText(res.StatusCode)
	}
	return e
}

// DocumentBody is a document's bytes as an organization receives them.
type DocumentBody struct {
	Status       int    // 200, or 206 for a range
	ContentRange string // for a range: "bytes first-last/size"
	Body         io.ReadCloser
}

// ReadDocument opens a document's bytes with a grant that covers the
// field "content" of documents. rng is an RFC 9110 Range header value
// ("bytes=0-1023") or empty for the whole document. Close the body.
func (o *Org) ReadDocument(ctx context.Context, grant, id, rng string) (DocumentBody, error) {
	path := "/v1/data/documents/" + url.PathEscape(id) + "/content"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.url+path, nil)
	if err != nil {
		return DocumentBody{}, err
	}
	proof, err := o.key.Proof(http.MethodGet, o.url+path, grant, o.Now())
	if err != nil {
		return DocumentBody{}, err
	}
	req.Header.Set("Authorization", "DPoP "+grant)
	req.Header.Set("DPoP", proof)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	hc := *o.http
	hc.Timeout = 0
	res, err := hc.Do(req)
	if err != nil {
		return DocumentBody{}, err
	}
	o.seen.observe(res)
	if err := errorOf(res); err != nil {
		res.Body.Close()
		return DocumentBody{}, err
	}
	return DocumentBody{Status: res.StatusCode, ContentRange: res.Header.Get("Content-Range"), Body: res.Body}, nil
}
