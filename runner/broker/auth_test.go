package broker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testHash is a bcrypt hash (cost 4) of "secret", made once per test binary.
var testHash = func() string {
	h, err := HashPassword("secret", 4)
	if err != nil {
		panic(err)
	}
	return h
}()

func TestParseAuthFile(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		wantErr []string // substrings, each must appear
	}{
		{name: "ok", src: "users:\n  - username: a\n    password: " + testHash + "\n    acl:\n      publish: [\"x/%u/#\"]\n      subscribe: [\"#\"]\n"},
		{name: "no acl", src: "users:\n  - username: a\n    password: " + testHash + "\n"},
		{name: "unknown field", src: "users:\n  - username: a\n    pasword: x\n", wantErr: []string{"auth.yaml:3:", `unknown field "pasword"`, "auth.yaml:2:", "password is missing"}},
		{name: "clear text", src: "users:\n  - username: a\n    password: hunter2\n", wantErr: []string{"auth.yaml:3:", "users[0].password", "not a bcrypt hash"}},
		{name: "duplicate", src: "users:\n  - {username: a, password: '" + testHash + "'}\n  - {username: a, password: '" + testHash + "'}\n", wantErr: []string{"auth.yaml:3:", "already defined at users[0]"}},
		{name: "bad pattern", src: "users:\n  - username: a\n    password: " + testHash + "\n    acl:\n      publish: [\"a/b#\"]\n      subscribe: [\"#/a\"]\n", wantErr: []string{"auth.yaml:5:", "users[0].acl.publish[0]", "whole level", "auth.yaml:6:", "'#' must be the last level"}},
		{name: "empty username", src: "users:\n  - password: " + testHash + "\n", wantErr: []string{"auth.yaml:2:", "username is missing"}},
		{name: "bad yaml", src: "users: [\n", wantErr: []string{"auth.yaml:", "invalid YAML"}},
		{name: "empty", src: "", wantErr: []string{"want exactly one YAML document"}},
		{name: "wrong type", src: "users: 3\n", wantErr: []string{"auth.yaml:1:", "want a list"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			af, err := ParseAuthFile("auth.yaml", []byte(tc.src))
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if len(af.Users) != 1 || af.Users[0].Username != "a" {
					t.Fatalf("users = %+v", af.Users)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadAuthFileMissing(t *testing.T) {
	_, err := LoadAuthFile(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "Options.AuthFile") {
		t.Fatalf("err = %v", err)
	}
}

func TestHashPassword(t *testing.T) {
	a := newAuthenticator(&AuthFile{Users: []User{{Username: "u", Password: testHash}}})
	if _, ok := a.checkPassword([]byte("u"), []byte("secret")); !ok {
		t.Error("right password refused")
	}
	if _, ok := a.checkPassword([]byte("u"), []byte("Secret")); ok {
		t.Error("wrong password accepted")
	}
	if _, ok := a.checkPassword([]byte("v"), []byte("secret")); ok {
		t.Error("unknown user accepted")
	}
	if _, err := HashPassword("", 0); err == nil {
		t.Error("empty password hashed")
	}
}

func TestCovers(t *testing.T) {
	tests := []struct {
		pattern, filter string
		want            bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"a/+", "a/b", true},
		{"a/+", "a/+", true},
		{"a/+", "a/#", false},
		{"a/+", "a/b/c", false},
		{"a/+/c", "a/x/c", true},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"a/#", "a/+/#", true},
		{"a/#", "b/c", false},
		{"#", "a/b", true},
		{"#", "#", true},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"a/b", "a/+", false},
		{"a//b", "a//b", true},
		{"a/", "a/", true},
		{"a/", "a", false},
		{"", "a", false},
		{"a", "", false},
	}
	for _, tc := range tests {
		if got := covers(tc.pattern, tc.filter); got != tc.want {
			t.Errorf("covers(%q, %q) = %v, want %v", tc.pattern, tc.filter, got, tc.want)
		}
	}
}

func TestAllowedSubstitution(t *testing.T) {
	tests := []struct {
		pattern, user, client, topic string
		want                         bool
	}{
		{"devices/%u/#", "alice", "c1", "devices/alice/temp", true},
		{"devices/%u/#", "alice", "c1", "devices/bob/temp", false},
		{"cmd/%c", "alice", "c1", "cmd/c1", true},
		{"cmd/%c", "alice", "c1", "cmd/c2", false},
		{"x/%u-%c", "a", "b", "x/a-b", true},
		{"devices/%u/#", "a/b", "c", "devices/a/b/x", false}, // '/' in username never widens
		{"devices/%u/#", "+", "c", "devices/+/x", false},
		{"devices/%u", "", "c", "devices/", false},
		{"100%", "a", "c", "100%", true},
	}
	for _, tc := range tests {
		if got := allowed([]string{tc.pattern}, tc.user, tc.client, tc.topic); got != tc.want {
			t.Errorf("allowed(%q, u=%q, c=%q, %q) = %v, want %v", tc.pattern, tc.user, tc.client, tc.topic, got, tc.want)
		}
	}
}

// matchTopic is a straightforward reference matcher for a pattern against a
// topic name (no wildcards in topic).
func matchTopic(pattern, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(pattern, "+") || strings.HasPrefix(pattern, "#")) {
		return false
	}
	p := strings.Split(pattern, "/")
	tl := strings.Split(topic, "/")
	for i, l := range p {
		if l == "#" {
			return true
		}
		if i >= len(tl) {
			return false
		}
		if l != "+" && l != tl[i] {
			return false
		}
	}
	return len(p) == len(tl)
}

func FuzzCovers(f *testing.F) {
	for _, s := range [][2]string{{"a/+", "a/b"}, {"a/#", "a"}, {"#", "$SYS/x"}, {"a/+/c", "a/b/c"}, {"+/+", "/"}, {"a/#", "a/+/#"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, filter string) {
		got := covers(pattern, filter)
		if checkPattern(pattern) != nil || pattern == "" || filter == "" {
			return
		}
		if !strings.ContainsAny(filter, "+#") {
			// A topic name: must agree with the reference matcher, except
			// the "a/#" covers "a" parent rule which matchTopic also has.
			if want := matchTopic(pattern, filter); got != want {
				t.Fatalf("covers(%q, %q) = %v, reference says %v", pattern, filter, got, want)
			}
		}
		if got && checkPattern(filter) == nil {
			// Every pattern covers itself; covering is transitive with '#'.
			if !covers(pattern, pattern) {
				t.Fatalf("covers(%q, itself) = false", pattern)
			}
		}
	})
}

func FuzzParseAuthFile(f *testing.F) {
	f.Add([]byte("users:\n  - username: a\n    password: " + testHash + "\n    acl:\n      publish: [\"x/%u/#\"]\n"))
	f.Add([]byte("users: [{username: a, password: x}]"))
	f.Add([]byte("users:\n  - acl: {publish: [\"#/\"]}\n"))
	f.Add([]byte("- a\n- b\n"))
	f.Add([]byte("users: &a [*a]"))
	f.Fuzz(func(t *testing.T, src []byte) {
		af, err := ParseAuthFile("f.yaml", src)
		if err != nil {
			if af != nil {
				t.Fatal("result and error both set")
			}
			if !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, u := range af.Users {
			if u.Username == "" || u.Password == "" {
				t.Fatalf("accepted user %+v", u)
			}
			if u.ACL != nil {
				for _, p := range append(append([]string{}, u.ACL.Publish...), u.ACL.Subscribe...) {
					if checkPattern(p) != nil {
						t.Fatalf("accepted bad pattern %q", p)
					}
				}
			}
		}
	})
}

func writeAuthFile(t *testing.T, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "auth.yaml")
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
