package broker

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/eddy-edge/eddy/pipeline/strictyaml"
)

// AuthFile is the YAML document named by Options.AuthFile:
//
//	users:
//	  - username: thermo-1
//	    password: $2a$10$...        # bcrypt hash, see HashPassword / `eddy passwd`
//	    acl:
//	      publish: ["devices/%u/#"]  # MQTT wildcards; %u = username, %c = client id
//	      subscribe: ["commands/%c/+"]
//
// A user without an acl section may publish and subscribe anywhere. A user
// with an acl section may only use the patterns listed (an empty or missing
// list denies that direction).
type AuthFile struct {
	// Users are the accounts allowed to connect.
	Users []User `json:"users"`
}

// User is one account of an AuthFile.
type User struct {
	// Username the client sends in CONNECT.
	Username string `json:"username"`
	// Password is a bcrypt hash of the password (never the clear text).
	Password string `json:"password"`
	// ACL restricts the topics the user may use; nil means unrestricted.
	ACL *ACL `json:"acl,omitempty"`
}

// ACL lists the topic patterns a user may publish to and subscribe to.
// Patterns use MQTT wildcards (+ one level, # the rest) and the
// substitutions %u (username) and %c (client id).
type ACL struct {
	// Publish patterns the user may publish to.
	Publish []string `json:"publish,omitempty"`
	// Subscribe patterns the user may subscribe to; a subscription filter is
	// allowed only when every topic it can match is covered by one pattern.
	Subscribe []string `json:"subscribe,omitempty"`
}

// HashPassword returns the bcrypt hash of password to put in an auth file
// (what `eddy passwd` prints). cost 0 means bcrypt.DefaultCost.
func HashPassword(password string, cost int) (string, error) {
	if password == "" {
		return "", errors.New("password is empty; choose a non-empty password")
	}
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// authenticator holds a loaded auth file. It is immutable after load.
type authenticator struct {
	users map[string]*User
}

// LoadAuthFile reads and checks the auth file at path. Errors carry
// file:line and the field path.
func LoadAuthFile(path string) (*AuthFile, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read auth file: %w; set Options.AuthFile to a readable YAML file", err)
	}
	return ParseAuthFile(path, src)
}

// ParseAuthFile parses and checks an auth file read from file (used in
// messages only). Every problem found is reported, each with file:line.
func ParseAuthFile(file string, src []byte) (*AuthFile, error) {
	docs, errs := strictyaml.Split(file, src)
	if len(errs) > 0 {
		return nil, errs.Err()
	}
	if len(docs) != 1 {
		return nil, strictyaml.Errors{{Pos: strictyaml.Pos{File: file, Line: 1},
			Msg: fmt.Sprintf("want exactly one YAML document with a users: list, got %d", len(docs))}}.Err()
	}
	doc := docs[0]
	var af AuthFile
	errs = doc.Decode(&af)
	seen := map[string]int{}
	for i, u := range af.Users {
		p := fmt.Sprintf("users[%d]", i)
		if u.Username == "" {
			errs = append(errs, doc.At(p+".username", "username is missing or empty"))
		} else if j, dup := seen[u.Username]; dup {
			errs = append(errs, doc.At(p+".username", "user %q is already defined at users[%d]; remove one", u.Username, j))
		} else {
			seen[u.Username] = i
		}
		if u.Password == "" {
			errs = append(errs, doc.At(p+".password", "password is missing; put a bcrypt hash here (eddy passwd)"))
		} else if _, err := bcrypt.Cost([]byte(u.Password)); err != nil {
			errs = append(errs, doc.At(p+".password", "not a bcrypt hash (%v); never store clear-text passwords, create one with eddy passwd", err))
		}
		if u.ACL != nil {
			for k, pat := range u.ACL.Publish {
				if err := checkPattern(pat); err != nil {
					errs = append(errs, doc.At(fmt.Sprintf("%s.acl.publish[%d]", p, k), "%v", err))
				}
			}
			for k, pat := range u.ACL.Subscribe {
				if err := checkPattern(pat); err != nil {
					errs = append(errs, doc.At(fmt.Sprintf("%s.acl.subscribe[%d]", p, k), "%v", err))
				}
			}
		}
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return &af, nil
}

func newAuthenticator(af *AuthFile) *authenticator {
	a := &authenticator{users: make(map[string]*User, len(af.Users))}
	for i := range af.Users {
		a.users[af.Users[i].Username] = &af.Users[i]
	}
	return a
}

// checkPassword reports whether username/password are valid; it returns the
// user on success.
func (a *authenticator) checkPassword(username, password []byte) (*User, bool) {
	if a == nil {
		return nil, false
	}
	u, ok := a.users[string(username)]
	if !ok {
		return nil, false
	}
	if bcrypt.CompareHashAndPassword([]byte(u.Password), password) != nil {
		return nil, false
	}
	return u, true
}

// checkPattern validates an ACL pattern: levels separated by '/', '+' alone
// in its level, '#' alone and last.
func checkPattern(p string) error {
	if p == "" {
		return errors.New(`empty pattern; use "#" for every topic`)
	}
	if strings.ContainsRune(p, 0) {
		return errors.New("pattern contains a NUL character")
	}
	levels := strings.Split(p, "/")
	for i, l := range levels {
		switch {
		case l == "#":
			if i != len(levels)-1 {
				return fmt.Errorf("%q: '#' must be the last level", p)
			}
		case l == "+":
		case strings.ContainsAny(l, "+#"):
			return fmt.Errorf("%q: wildcards '+' and '#' must fill a whole level, e.g. a/+/c or a/#", p)
		}
	}
	return nil
}

// expand substitutes %u and %c in pattern. It returns false when a
// substituted value contains '/', '+' or '#' (which would widen the
// pattern), or when the pattern needs a value that is empty.
func expand(pattern, username, clientID string) (string, bool) {
	if !strings.Contains(pattern, "%") {
		return pattern, true
	}
	var b strings.Builder
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		if c == '%' && i+1 < len(pattern) && (pattern[i+1] == 'u' || pattern[i+1] == 'c') {
			v := username
			if pattern[i+1] == 'c' {
				v = clientID
			}
			if v == "" || strings.ContainsAny(v, "/+#") {
				return "", false
			}
			b.WriteString(v)
			i++
			continue
		}
		b.WriteByte(c)
	}
	return b.String(), true
}

// covers reports whether every topic matched by filter (a topic name or a
// subscription filter) is also matched by pattern. Both use MQTT wildcards.
// As in MQTT, a wildcard in the first level of pattern does not match topics
// starting with '$'.
func covers(pattern, filter string) bool {
	if filter == "" || pattern == "" {
		return false
	}
	if filter[0] == '$' && (pattern[0] == '+' || pattern[0] == '#') {
		return false
	}
	for {
		pl, prest, pmore := cut(pattern)
		fl, frest, fmore := cut(filter)
		switch {
		case pl == "#":
			return true
		case fl == "#":
			return false // only '#' covers '#'
		case pl == "+":
			// '+' covers any single level, literal or '+'.
		case fl == "+" || pl != fl:
			return false
		}
		if !pmore || !fmore {
			if pmore && !fmore {
				// "a/#" covers "a" (MQTT: # matches the parent level).
				return prest == "#"
			}
			return pmore == fmore
		}
		pattern, filter = prest, frest
	}
}

func cut(s string) (level, rest string, more bool) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// allowed reports whether any pattern (after %u/%c substitution) covers
// filter.
func allowed(patterns []string, username, clientID, filter string) bool {
	for _, p := range patterns {
		x, ok := expand(p, username, clientID)
		if ok && covers(x, filter) {
			return true
		}
	}
	return false
}
