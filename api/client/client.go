// Package client is a Go client for a pdvault server: the owner API (used by
// the pdvault CLI) and the organization protocol (used by pdvault-org and
// by organizations integrating with a vault).
//
// It depends only on the standard library and go-jose, so an organization
// can import it without pulling in the vault's storage.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Error is an error answer from the server.
type Error struct {
	Status      int      `json:"-"`
	Code        string   `json:"error"`
	Description string   `json:"error_description"`
	Reasons     []string `json:"reasons,omitempty"`
	RetryAfter  time.Duration
}

func (e *Error) Error() string {
	s := e.Code
	if e.Status != 0 { // 0: an error reported inside a body, e.g. a failed import job
		s = fmt.Sprintf("%s (HTTP %d)", e.Code, e.Status)
	}
	if e.Description != "" {
		s += ": " + e.Description
	}
	for _, r := range e.Reasons {
		s += "\n  - " + r
	}
	return s
}

// IsCode reports whether err is a server error with the given code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// maxResponse bounds what the client reads from a server.
const maxResponse = 64 << 20

// base holds what every client shares.
type base struct {
	url  string
	http *http.Client
}

func newBase(baseURL string, hc *http.Client) (base, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return base{}, fmt.Errorf("vault address %q is not an http(s) URL", baseURL)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return base{url: strings.TrimRight(baseURL, "/"), http: hc}, nil
}

// do sends a request and decodes a JSON answer into out (unless nil). A
// non-2xx answer becomes *Error.
func (b base) do(req *http.Request, out any) (*http.Response, error) {
	res, err := b.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxResponse))
	if err != nil {
		return nil, err
	}
	if res.StatusCode >= 300 {
		e := &Error{Status: res.StatusCode}
		if json.Unmarshal(body, e) != nil || e.Code == "" {
			e.Code = "http_error"
			e.Description = http.StatusText(res.StatusCode)
		}
		if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil {
			e.RetryAfter = time.Duration(s) * time.Second
		}
		return res, e
	}
	if out != nil && len(body) > 0 {
		if err := json.Unmarshal(body, out); err != nil {
			return res, fmt.Errorf("decode %s response: %w", req.URL.Path, err)
		}
	}
	return res, nil
}

func (b base) newRequest(ctx context.Context, method, path string, body any) (*http.Request, error) {
	var r io.Reader
	switch x := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(x)
	case string:
		r = strings.NewReader(x)
	default:
		j, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.url+path, r)
	if err != nil {
		return nil, err
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	return req, nil
}
