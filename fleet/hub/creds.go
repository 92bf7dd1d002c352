package hub

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"sort"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	"github.com/eddy-edge/eddy/fleet"
)

// Credentials are the hub's users: administrators (eddy fleet, the
// controller, cloud consumers: full access) and edge nodes (each confined
// to its own subjects by fleet.NodePermissions). Passwords are stored as
// bcrypt hashes; nats-server checks them directly.
type Credentials struct {
	// Admins have full access.
	Admins []User `yaml:"admins,omitempty" json:"admins,omitempty"`
	// Nodes are edge nodes: the user name is the node name.
	Nodes []User `yaml:"nodes,omitempty" json:"nodes,omitempty"`

	// BcryptCost is the cost of the hashes Set makes. Default 11. Every
	// connection pays one verification at this cost (tests use
	// bcrypt.MinCost).
	BcryptCost int `yaml:"-" json:"-"`

	// internalUser/internalPassword authenticate the hub's own in-process
	// connection (bucket setup); random per start, never written.
	internalUser, internalPassword string
}

// User is one user name and bcrypt password hash.
type User struct {
	Name string `yaml:"name" json:"name"`
	// BcryptHash is the bcrypt hash of the password ($2a$...).
	BcryptHash string `yaml:"bcrypt" json:"bcrypt"`
}

// LoadCredentials reads a credentials file (YAML). A missing file is an
// empty set, so `eddy hub credentials add` can create it.
func LoadCredentials(path string) (*Credentials, error) {
	c := &Credentials{}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && err.Error() != "EOF" {
		return nil, fmt.Errorf("credentials file %s: %w", path, err)
	}
	for _, u := range c.Nodes {
		if err := fleet.CheckName("node "+u.Name, u.Name); err != nil {
			return nil, fmt.Errorf("credentials file %s: %w", path, err)
		}
	}
	return c, nil
}

// Save writes the file (mode 0600: it holds password hashes).
func (c *Credentials) Save(path string) error {
	sort.Slice(c.Admins, func(i, j int) bool { return c.Admins[i].Name < c.Admins[j].Name })
	sort.Slice(c.Nodes, func(i, j int) bool { return c.Nodes[i].Name < c.Nodes[j].Name })
	b, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Set adds or replaces a user (node when node is true) with a new random
// password, and returns the password (shown once; only its hash is kept).
// Replacing is how a password is rotated.
func (c *Credentials) Set(name string, node bool) (string, error) {
	if node {
		if err := fleet.CheckName("node name", name); err != nil {
			return "", err
		}
	} else if name == "" {
		return "", fmt.Errorf("user name is empty")
	}
	pw, err := RandomPassword()
	if err != nil {
		return "", err
	}
	cost := c.BcryptCost
	if cost == 0 {
		cost = 11
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		return "", err
	}
	list := &c.Admins
	if node {
		list = &c.Nodes
	}
	c.Remove(name)
	*list = append(*list, User{Name: name, BcryptHash: string(h)})
	return pw, nil
}

// Remove deletes a user or node; it is how a node is revoked (the hub
// must be restarted or reloaded, and the node's leaf connection is
// refused from then on).
func (c *Credentials) Remove(name string) bool {
	found := false
	for _, list := range []*[]User{&c.Admins, &c.Nodes} {
		out := (*list)[:0]
		for _, u := range *list {
			if u.Name == name {
				found = true
				continue
			}
			out = append(out, u)
		}
		*list = out
	}
	return found
}

// RandomPassword returns 24 random bytes in URL-safe base64.
func RandomPassword() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func (c *Credentials) users(opts fleet.Options) ([]*server.User, error) {
	var out []*server.User
	seen := map[string]bool{}
	add := func(u *server.User) error {
		if seen[u.Username] {
			return fmt.Errorf("hub credentials: user %q is defined twice", u.Username)
		}
		seen[u.Username] = true
		out = append(out, u)
		return nil
	}
	for _, a := range c.Admins {
		if err := add(&server.User{Username: a.Name, Password: a.BcryptHash}); err != nil {
			return nil, err
		}
	}
	for _, n := range c.Nodes {
		p := fleet.NodePermissions(n.Name, opts)
		if err := add(&server.User{Username: n.Name, Password: n.BcryptHash, Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: p.Publish},
			Subscribe: &server.SubjectPermission{Allow: p.Subscribe},
		}}); err != nil {
			return nil, err
		}
	}
	if c.internalUser == "" {
		pw, err := RandomPassword()
		if err != nil {
			return nil, err
		}
		c.internalUser, c.internalPassword = "_eddy_hub_internal", pw
	}
	if err := add(&server.User{Username: c.internalUser, Password: c.internalPassword}); err != nil {
		return nil, err
	}
	return out, nil
}

// hashes maps every user and node name to its hash.
func (c *Credentials) hashes() map[string]string {
	m := map[string]string{}
	for _, u := range append(append([]User(nil), c.Admins...), c.Nodes...) {
		m[u.Name] = u.BcryptHash
	}
	return m
}
