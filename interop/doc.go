// Package interop drives the organization side of pdvault with OAuth and
// JOSE libraries used as their authors publish them: golang.org/x/oauth2
// with github.com/lestrrat-go/jwx (Go), and oauth4webapi with jose
// (JavaScript, run with Node). It is a module of its own so that these
// libraries are dependencies of the tests only, never of the vault.
package interop
