package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

// Courier is the vault's outbound HTTP client: revocation notices and
// domain-verification fetches. It implements vault.Courier.
//
// Every connection is checked where it is made, on the address actually
// dialled: only public addresses, or loopback when AllowLoopback is set.
// That covers DNS names that resolve to private addresses and DNS
// rebinding, which a check of the URL alone would miss. Proxies from the
// environment are ignored for the same reason. Redirects are followed only
// on the same host, at most three.
type Courier struct {
	client        *http.Client
	allowLoopback bool
}

var errAddressNotAllowed = errors.New("address not allowed")

// NewCourier returns a Courier whose every request, redirects included,
// ends within timeout.
func NewCourier(allowLoopback bool, timeout time.Duration) *Courier {
	dialer := &net.Dialer{
		Timeout: min(timeout, 5*time.Second),
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !policy.AllowedDialAddr(ap.Addr(), allowLoopback) {
				return errAddressNotAllowed
			}
			return nil
		},
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		TLSHandshakeTimeout:    min(timeout, 5*time.Second),
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: 16 << 10,
		MaxIdleConns:           10,
		IdleConnTimeout:        30 * time.Second,
	}
	c := &Courier{allowLoopback: allowLoopback}
	c.client = &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return &vault.OutboundError{Reason: "too many redirects"}
			}
			if !strings.EqualFold(req.URL.Host, via[0].URL.Host) {
				return &vault.OutboundError{Reason: "redirected to another host"}
			}
			if policy.CheckOutboundURL(req.URL.String(), allowLoopback) != nil {
				return &vault.OutboundError{Reason: "redirected to a URL that is not allowed"}
			}
			return nil
		},
	}
	return c
}

// classify turns a transport error into a reason the owner can read.
func classify(err error) error {
	var oe *vault.OutboundError
	switch {
	case errors.As(err, &oe):
		return oe
	case errors.Is(err, errAddressNotAllowed):
		return &vault.OutboundError{Reason: "the address is not allowed (loopback, private or not public)", Err: err}
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return &vault.OutboundError{Reason: "timed out", Err: err}
	}
	return &vault.OutboundError{Reason: "could not connect", Err: err}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c *Courier) check(raw string) error {
	if err := policy.CheckOutboundURL(raw, c.allowLoopback); err != nil {
		return &vault.OutboundError{Reason: "the URL is not allowed", Err: err}
	}
	return nil
}

// Post sends body to rawURL and returns the status. The response body is
// read only a little, then dropped.
func (c *Courier) Post(ctx context.Context, rawURL, contentType string, body []byte) (int, error) {
	if err := c.check(rawURL); err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return 0, &vault.OutboundError{Reason: "bad URL", Err: err}
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "pdvault")
	res, err := c.client.Do(req)
	if err != nil {
		return 0, classify(err)
	}
	defer res.Body.Close()
	io.Copy(io.Discard, io.LimitReader(res.Body, 4096))
	return res.StatusCode, nil
}

// Get fetches rawURL; a status other than 200, or a body over max bytes,
// is an error.
func (c *Courier) Get(ctx context.Context, rawURL string, max int64) ([]byte, error) {
	if err := c.check(rawURL); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, &vault.OutboundError{Reason: "bad URL", Err: err}
	}
	req.Header.Set("User-Agent", "pdvault")
	res, err := c.client.Do(req)
	if err != nil {
		return nil, classify(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, &vault.OutboundError{Reason: fmt.Sprintf("%s answered HTTP %d", hostOnly(rawURL), res.StatusCode)}
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, max+1))
	if err != nil {
		return nil, classify(err)
	}
	if int64(len(b)) > max {
		return nil, &vault.OutboundError{Reason: fmt.Sprintf("the response is larger than %d bytes", max)}
	}
	return b, nil
}

func hostOnly(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the server"
	}
	return u.Host
}
