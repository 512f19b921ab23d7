package api

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/pdvault/pdvault/vault"
)

// received is what a test receiver got.
type received struct {
	header http.Header
	body   []byte
}

func receiver(t *testing.T) (*httptest.Server, <-chan received) {
	ch := make(chan received, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- received{r.Header.Clone(), b}
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

// mailpit runs a real SMTP server (Mailpit, built from the Go module
// proxy, or PDVAULT_MAILPIT) requiring STARTTLS and a login; it returns
// the SMTP port, its API URL and the CA its certificate is under.
func mailpit(t *testing.T) (int, string, *x509.CertPool) {
	t.Helper()
	bin := os.Getenv("PDVAULT_MAILPIT")
	if bin == "" {
		dir := t.TempDir()
		cmd := exec.Command("go", "install", "github.com/axllent/mailpit@v1.27.11")
		cmd.Dir, cmd.Env = dir, append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go install mailpit: %v\n%s", err, out)
		}
		bin = filepath.Join(dir, "mailpit")
	}
	work := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "mail test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile, authFile := filepath.Join(work, "cert.pem"), filepath.Join(work, "key.pem"), filepath.Join(work, "auth")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
	os.WriteFile(authFile, []byte("vault:s3cret-pass\n"), 0o600)
	smtpPort, uiPort := freeTCPPort(t), freeTCPPort(t)
	cmd := exec.Command(bin, "--smtp", fmt.Sprintf("127.0.0.1:%d", smtpPort), "--listen", fmt.Sprintf("127.0.0.1:%d", uiPort),
		"--smtp-tls-cert", certFile, "--smtp-tls-key", keyFile, "--smtp-require-starttls", "--smtp-auth-file", authFile,
		"--database", filepath.Join(work, "mail.db"), "--quiet")
	out, _ := os.Create(filepath.Join(work, "log"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	api := fmt.Sprintf("http://127.0.0.1:%d", uiPort)
	for deadline := time.Now().Add(30 * time.Second); ; {
		if res, err := http.Get(api + "/api/v1/messages"); err == nil {
			res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(out.Name())
			t.Fatalf("mailpit did not start:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	pool := x509.NewCertPool()
	c, _ := x509.ParseCertificate(der)
	pool.AddCert(c)
	return smtpPort, api, pool
}

func freeTCPPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// pushDecrypt is the receiving browser's side of RFC 8291: ECDH with the
// vault's ephemeral key, HKDF with the auth secret, AES-128-GCM
// (RFC 8188 aes128gcm, one record).
func pushDecrypt(t *testing.T, ua *ecdh.PrivateKey, auth, body []byte) []byte {
	t.Helper()
	if len(body) < 21 {
		t.Fatalf("push body too short: %d", len(body))
	}
	salt, idlen := body[:16], int(body[20])
	rs := binary.BigEndian.Uint32(body[16:20])
	asPub := body[21 : 21+idlen]
	ct := body[21+idlen:]
	if uint32(len(ct)) > rs {
		t.Fatalf("more than one record (rs %d, %d bytes)", rs, len(ct))
	}
	as, err := ecdh.P256().NewPublicKey(asPub)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := ua.ECDH(as)
	if err != nil {
		t.Fatal(err)
	}
	keyInfo := append(append([]byte("WebPush: info\x00"), ua.PublicKey().Bytes()...), asPub...)
	ikm, _ := hkdf.Key(sha256.New, secret, auth, string(keyInfo), 32)
	cek, _ := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	nonce, _ := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: nonce\x00", 12)
	blk, _ := aes.NewCipher(cek)
	gcm, _ := cipher.NewGCM(blk)
	pt, err := gcm.Open(nil, nonce, ct, nil)
	if err != nil {
		t.Fatalf("push payload does not decrypt with the subscription's keys: %v", err)
	}
	pt = []byte(strings.TrimRight(string(pt), "\x00"))
	if len(pt) == 0 || pt[len(pt)-1] != 2 {
		t.Fatalf("no last-record delimiter")
	}
	return pt[:len(pt)-1]
}

// A request arriving at the vault reaches the owner on every channel:
// an ntfy POST, a webhook whose Standard Webhooks signature verifies
// with the reference library, an email in a real SMTP server (STARTTLS,
// login), and a Web Push message the browser's keys decrypt, sent with a
// VAPID signature by the vault's key. Each names who asks for what and
// links to the decision page; none carries a record value.
func TestNotificationsReachEveryChannel(t *testing.T) {
	smtpPort, mailAPI, mailCA := mailpit(t)
	e := newEnvWith(t, vault.Options{AllowLoopbackHTTP: true, NoticeBaseDelay: 10 * time.Millisecond,
		Notifier: NewNotifier(NewCourier(true, 10*time.Second), mailCA, 10*time.Second)})
	e.record("profile", `{"name":"Ada Secret-Value","email":"ada@example.org"}`)
	ntfy, ntfyGot := receiver(t)
	hook, hookGot := receiver(t)
	push, pushGot := receiver(t)

	// The browser's subscription: its own P-256 key and auth secret.
	ua, _ := ecdh.P256().GenerateKey(rand.Reader)
	auth := make([]byte, 16)
	rand.Read(auth)
	sub := map[string]any{"endpoint": push.URL + "/push/abc", "keys": map[string]string{
		"p256dh": base64.RawURLEncoding.EncodeToString(ua.PublicKey().Bytes()), "auth": base64.RawURLEncoding.EncodeToString(auth)}}

	var secret string
	for _, body := range []any{
		map[string]any{"kind": "ntfy", "url": ntfy.URL + "/pdvault-alerts", "token": "tk_123"},
		map[string]any{"kind": "webhook", "url": hook.URL + "/hook"},
		map[string]any{"kind": "email", "smtp": map[string]any{"host": "127.0.0.1", "port": smtpPort, "tls": "starttls",
			"username": "vault", "password": "s3cret-pass", "from": "vault@example.org", "to": "owner@example.org"}},
		map[string]any{"kind": "webpush", "push": sub},
	} {
		b, _ := json.Marshal(body)
		r := e.do("POST", "/v1/owner/notifications/channels", e.token, strings.NewReader(string(b)))
		if r.status != http.StatusCreated {
			t.Fatalf("add channel: %d %s", r.status, r.body)
		}
		var ch vault.Channel
		r.json(t, &ch)
		if ch.Secret != "" {
			secret = ch.Secret
		}
		if strings.Contains(string(r.body), "s3cret-pass") || strings.Contains(string(r.body), "tk_123") {
			t.Fatalf("a channel's secret comes back: %s", r.body)
		}
	}
	r := e.do("GET", "/v1/owner/notifications/vapid", e.token, nil)
	var vk struct {
		PublicKey string `json:"public_key"`
	}
	r.json(t, &vk)

	o := e.org("ES256")
	tk, err := o.Request(t.Context(), askProfile("name"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.v.DeliverNotifications(t.Context(), GenerateVAPID); err != nil {
		t.Fatal(err)
	}
	link := e.srv.URL + "/ui/requests/" + tk.RequestID
	noValues := func(where, s string) {
		t.Helper()
		if strings.Contains(s, "Secret-Value") || strings.Contains(s, "ada@example.org") {
			t.Errorf("%s carries a record value: %s", where, s)
		}
		if !strings.Contains(s, "Acme Bikes") || !strings.Contains(s, "profile:name") {
			t.Errorf("%s does not say who asks for what: %s", where, s)
		}
	}
	wait := func(c <-chan received, what string) received {
		t.Helper()
		select {
		case got := <-c:
			return got
		case <-time.After(10 * time.Second):
			t.Fatalf("nothing reached the %s receiver", what)
		}
		return received{}
	}

	got := wait(ntfyGot, "ntfy")
	if got.header.Get("Click") != link || got.header.Get("Authorization") != "Bearer tk_123" || got.header.Get("Title") == "" {
		t.Errorf("ntfy headers %v", got.header)
	}
	noValues("ntfy", got.header.Get("Title")+" "+string(got.body))

	got = wait(hookGot, "webhook")
	wh, _ := standardwebhooks.NewWebhook(secret)
	if err := wh.Verify(got.body, got.header); err != nil {
		t.Fatalf("webhook signature: %v", err)
	}
	other, _ := standardwebhooks.NewWebhook("whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 32)))
	if other.Verify(got.body, got.header) == nil {
		t.Fatal("the webhook verifies under another secret")
	}
	var hb struct {
		Type string
		Data map[string]string
	}
	json.Unmarshal(got.body, &hb)
	if hb.Type != "pdvault.request.received" || hb.Data["link"] != link {
		t.Errorf("webhook body %s", got.body)
	}
	noValues("webhook", string(got.body))

	got = wait(pushGot, "push")
	if got.header.Get("Content-Encoding") != "aes128gcm" || got.header.Get("TTL") == "" {
		t.Errorf("push headers %v", got.header)
	}
	// VAPID (RFC 8292): "vapid t=JWT, k=KEY", the JWT signed by KEY.
	a := got.header.Get("Authorization")
	var jwt, k string
	for _, part := range strings.Split(strings.TrimPrefix(a, "vapid "), ",") {
		kv := strings.SplitN(strings.TrimSpace(part), "=", 2)
		if len(kv) == 2 && kv[0] == "t" {
			jwt = kv[1]
		} else if len(kv) == 2 && kv[0] == "k" {
			k = kv[1]
		}
	}
	if k != vk.PublicKey {
		t.Fatalf("VAPID key %q, vault's %q", k, vk.PublicKey)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(k)
	x, y := elliptic.Unmarshal(elliptic.P256(), raw)
	tok, err := jose.ParseSigned(jwt, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || x == nil {
		t.Fatalf("VAPID JWT %v", err)
	}
	claims, err := tok.Verify(&ecdsa.PublicKey{Curve: elliptic.P256(), X: x, Y: y})
	if err != nil || !strings.Contains(string(claims), `"aud":"`+push.URL+`"`) {
		t.Fatalf("VAPID JWT does not verify for the push service: %v %s", err, claims)
	}
	var pm map[string]string
	if err := json.Unmarshal(pushDecrypt(t, ua, auth, got.body), &pm); err != nil || pm["url"] != link {
		t.Fatalf("push message %v %v", pm, err)
	}
	noValues("push", pm["title"]+" "+pm["body"])

	// The email, as the SMTP server stored it.
	var mail string
	for deadline := time.Now().Add(10 * time.Second); mail == ""; {
		res, err := http.Get(mailAPI + "/api/v1/messages")
		if err == nil {
			var list struct {
				Messages []struct{ ID string }
			}
			json.NewDecoder(res.Body).Decode(&list)
			res.Body.Close()
			if len(list.Messages) > 0 {
				res, _ := http.Get(mailAPI + "/api/v1/message/" + list.Messages[0].ID + "/raw")
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				mail = string(b)
			}
		}
		if mail == "" && time.Now().After(deadline) {
			t.Fatal("no email in the SMTP server")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(mail, "To: owner@example.org") || !strings.Contains(mail, link) {
		t.Errorf("email:\n%s", mail)
	}
	noValues("email", mail)

	// Delivered everywhere, visible to the owner.
	chs, _ := e.v.Channels(t.Context())
	for _, c := range chs {
		if c.Delivered != 1 || c.Failed != 0 || c.Pending != 0 {
			t.Errorf("channel %s: %+v", c.Kind, c)
		}
	}
}

// A failing channel is retried with backoff, its failure shown to the
// owner; a test message can be sent; a flood of requests is folded into
// one message, not a stream.
func TestNotificationRetriesAndSpacing(t *testing.T) {
	e := newEnvWith(t, vault.Options{AllowLoopbackHTTP: true, NoticeBaseDelay: time.Millisecond, NoticeMaxAttempts: 3,
		Notifier: NewNotifier(NewCourier(true, 5*time.Second), nil, 5*time.Second)})
	var mu sync.Mutex
	fail := true
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		got = append(got, string(b))
	}))
	defer srv.Close()
	ch, err := e.v.AddChannel(t.Context(), vault.ChannelConfig{Kind: vault.ChannelNtfy, URL: srv.URL + "/t"})
	if err != nil {
		t.Fatal(err)
	}
	o := e.org("ES256")
	for range 3 {
		if _, err := o.Request(t.Context(), askProfile("name")); err != nil {
			t.Fatal(err)
		}
	}
	deliver := func() {
		time.Sleep(5 * time.Millisecond)
		if _, err := e.v.DeliverNotifications(t.Context(), GenerateVAPID); err != nil {
			t.Fatal(err)
		}
	}
	deliver()
	chs, _ := e.v.Channels(t.Context())
	if chs[0].Pending != 1 || !strings.Contains(chs[0].LastError, "HTTP 503") {
		t.Fatalf("after one failure: %+v", chs[0])
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	deliver()
	chs, _ = e.v.Channels(t.Context())
	if chs[0].Delivered != 1 || chs[0].Pending != 0 {
		t.Fatalf("after the retry: %+v", chs[0])
	}
	// Three requests, one message.
	mu.Lock()
	if len(got) != 1 {
		t.Fatalf("messages: %q", got)
	}
	mu.Unlock()
	r := e.do("POST", "/v1/owner/notifications/channels/"+ch.ID+"/test", e.token, nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("test message: %d %s", r.status, r.body)
	}
	deliver()
	mu.Lock()
	if len(got) != 2 || !strings.Contains(got[1], "reach you here") {
		t.Fatalf("test message not delivered: %q", got)
	}
	mu.Unlock()
	// Bad settings are refused by name.
	for body, code := range map[string]string{
		`{"kind":"sms"}`:                  "invalid_channel",
		`{"kind":"ntfy","url":"ftp://x"}`: "invalid_channel",
		`{"kind":"webpush","push":{"endpoint":"https://p.example/x","keys":{"p256dh":"AA","auth":"AA"}}}`:  "invalid_channel",
		`{"kind":"email","smtp":{"host":"m.example","from":"a@b.example","to":"x\r\nBcc: e@vil.example"}}`: "invalid_channel",
		`{"kind":"ntfy","url":"https://n.example/t","colour":"red"}`:                                       "invalid_request",
	} {
		r := e.do("POST", "/v1/owner/notifications/channels", e.token, strings.NewReader(body))
		if r.status != http.StatusBadRequest || r.errCode(t) != code {
			t.Errorf("%s: %d %s", body, r.status, r.body)
		}
	}
	if r := e.do("DELETE", "/v1/owner/notifications/channels/"+ch.ID, e.token, nil); r.status != http.StatusNoContent {
		t.Fatalf("remove: %d", r.status)
	}
	if r := e.do("POST", "/v1/owner/notifications/channels/"+ch.ID+"/test", e.token, nil); r.status != http.StatusNotFound {
		t.Fatalf("test on a removed channel: %d", r.status)
	}
}
