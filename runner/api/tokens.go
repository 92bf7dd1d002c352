package api

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// Tokens are the API's bearer tokens. Admin tokens may change pipelines;
// read-only tokens may only look.
type Tokens struct {
	// Admin tokens allow every request.
	Admin []string `yaml:"admin,omitempty" json:"admin,omitempty"`
	// ReadOnly tokens allow GET requests (including streams and /metrics).
	ReadOnly []string `yaml:"readOnly,omitempty" json:"readOnly,omitempty"`
}

// Empty reports whether no token is configured.
func (t Tokens) Empty() bool { return len(t.Admin) == 0 && len(t.ReadOnly) == 0 }

// minTokenLen keeps guessable tokens out of token files.
const minTokenLen = 16

// LoadTokens reads a token file: YAML with lists "admin" and "readOnly".
func LoadTokens(path string) (Tokens, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Tokens{}, fmt.Errorf("reading API token file: %w", err)
	}
	var t Tokens
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil {
		return Tokens{}, fmt.Errorf("%s: %v; expected YAML like\n  admin: [<token>]\n  readOnly: [<token>]", path, err)
	}
	if t.Empty() {
		return Tokens{}, fmt.Errorf("%s: no tokens; add at least one under admin:", path)
	}
	for _, list := range [][]string{t.Admin, t.ReadOnly} {
		for i, tok := range list {
			if len(tok) < minTokenLen || strings.ContainsAny(tok, " \t\r\n") {
				return Tokens{}, fmt.Errorf("%s: token %d is shorter than %d characters or has spaces; generate one with `openssl rand -hex 24`",
					path, i+1, minTokenLen)
			}
		}
	}
	return t, nil
}

// EnsureTokens loads the token file at path, or, when it does not exist,
// creates it (mode 0600, parent directories 0700) with one fresh admin and
// one fresh read-only token. created tells the caller to print them.
func EnsureTokens(path string) (t Tokens, created bool, err error) {
	t, err = LoadTokens(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return t, false, err
	}
	admin, err := NewToken()
	if err != nil {
		return Tokens{}, false, err
	}
	read, err := NewToken()
	if err != nil {
		return Tokens{}, false, err
	}
	t = Tokens{Admin: []string{admin}, ReadOnly: []string{read}}
	b, err := yaml.Marshal(t)
	if err != nil {
		return Tokens{}, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return Tokens{}, false, fmt.Errorf("creating API token file: %w", err)
	}
	b = append([]byte("# Eddy API bearer tokens. Admin tokens may change pipelines; readOnly tokens may only look.\n"), b...)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Tokens{}, false, fmt.Errorf("creating API token file: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return Tokens{}, false, fmt.Errorf("writing API token file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return Tokens{}, false, fmt.Errorf("writing API token file %s: %w", path, err)
	}
	return t, true, nil
}

// NewToken returns a fresh random token (192 bits, URL-safe).
func NewToken() (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating a token: %w", err)
	}
	return "eddy_" + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Role is what a request may do.
type Role int

// Roles, from least to most.
const (
	RoleNone Role = iota
	RoleRead
	RoleAdmin
)

func (r Role) String() string {
	switch r {
	case RoleRead:
		return "read"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// tokenSet checks tokens in constant time (per token) against their
// SHA-256 digests, so the server does not keep plain tokens.
type tokenSet struct {
	admin, read [][32]byte
}

func newTokenSet(t Tokens) tokenSet {
	var s tokenSet
	for _, tok := range t.Admin {
		s.admin = append(s.admin, sha256.Sum256([]byte(tok)))
	}
	for _, tok := range t.ReadOnly {
		s.read = append(s.read, sha256.Sum256([]byte(tok)))
	}
	return s
}

func (s tokenSet) role(token string) Role {
	h := sha256.Sum256([]byte(token))
	role := RoleNone
	for _, a := range s.read {
		if subtle.ConstantTimeCompare(h[:], a[:]) == 1 {
			role = RoleRead
		}
	}
	for _, a := range s.admin {
		if subtle.ConstantTimeCompare(h[:], a[:]) == 1 {
			role = RoleAdmin
		}
	}
	return role
}
