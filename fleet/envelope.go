package fleet

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// EnvelopeFormat is the version of the Envelope layout this package writes
// and the newest it reads. A reader refuses a newer format with an error
// that says to upgrade, instead of misreading it.
const EnvelopeFormat = 1

// MaxValueSize bounds one encoded envelope (1 MiB, NATS' default
// max_payload). Put refuses bigger objects, the plans bucket is created
// with this limit, and an edge refuses (and reports) a bigger value.
const MaxValueSize = 1 << 20

// Envelope is the value stored under an object's key in the plans bucket.
type Envelope struct {
	// Format is EnvelopeFormat of the writer.
	Format int `json:"format"`
	// Kind, Namespace and Name identify the object; with Node they must
	// match the key the envelope is stored under.
	Kind      Kind   `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Node is the edge node the object is meant for.
	Node string `json:"node"`
	// Generation is the object's version: the Kubernetes generation when
	// the controller writes it, or a counter that `eddy fleet apply`
	// increments whenever the hash changes. Edges report the generation
	// they run.
	Generation int64 `json:"generation"`
	// Hash changes iff what the object does changes: the plan hash for a
	// pipeline (pipeline.Plan.Hash), a hash of the canonical JSON for
	// devices and models.
	Hash string `json:"hash"`
	// Object is the resource itself as JSON: an eddy.dev Pipeline or a
	// devices.kubeedge.io Device or DeviceModel, exactly as a user writes it
	// in YAML.
	Object json.RawMessage `json:"object"`
	// Writer names who wrote the envelope (e.g. "eddy fleet", "controller").
	Writer string `json:"writer,omitempty"`
	// UpdatedAt is when it was written.
	UpdatedAt time.Time `json:"updatedAt"`
}

// Key returns the envelope's bucket key.
func (e *Envelope) Key() ObjectKey {
	return ObjectKey{Node: e.Node, Kind: e.Kind, Namespace: e.Namespace, Name: e.Name}
}

// Check returns an error for an envelope that cannot be stored or applied.
func (e *Envelope) Check() error {
	if e.Format < 1 || e.Format > EnvelopeFormat {
		if e.Format > EnvelopeFormat {
			return fmt.Errorf("envelope format %d is newer than this Eddy reads (%d): upgrade this node", e.Format, EnvelopeFormat)
		}
		return fmt.Errorf("envelope format %d is invalid; want 1..%d", e.Format, EnvelopeFormat)
	}
	if err := e.Key().Check(); err != nil {
		return err
	}
	if e.Generation < 0 {
		return fmt.Errorf("generation %d is negative", e.Generation)
	}
	if e.Hash == "" {
		return errors.New("hash is empty")
	}
	if len(bytes.TrimSpace(e.Object)) == 0 || bytes.Equal(bytes.TrimSpace(e.Object), []byte("null")) {
		return errors.New("object is empty")
	}
	return nil
}

// Encode returns the envelope as JSON, checked and bounded by MaxValueSize.
func (e *Envelope) Encode() ([]byte, error) {
	if err := e.Check(); err != nil {
		return nil, fmt.Errorf("%s: %w", e.Key(), err)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("%s: encoding: %w", e.Key(), err)
	}
	if len(b) > MaxValueSize {
		return nil, fmt.Errorf("%s: the encoded object is %d bytes, over the %d-byte limit of one plan; split it into smaller pipelines or device files", e.Key(), len(b), MaxValueSize)
	}
	return b, nil
}

// DecodeEnvelope decodes the value stored under key and checks that it is
// well formed and belongs to that key. Values come from the network: every
// problem is an error (never a panic) that names the key.
func DecodeEnvelope(key string, data []byte) (*Envelope, error) {
	k, err := ParseKey(key)
	if err != nil {
		return nil, err
	}
	if len(data) > MaxValueSize {
		return nil, fmt.Errorf("plan %s: value is %d bytes, over the %d-byte limit", key, len(data), MaxValueSize)
	}
	var e Envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("plan %s: not an Eddy envelope: %w", key, err)
	}
	if err := e.Check(); err != nil {
		return nil, fmt.Errorf("plan %s: %w", key, err)
	}
	if e.Key() != k {
		return nil, fmt.Errorf("plan %s: the envelope is for %s (node %s), not for its key: refusing it", key, e.Key(), e.Node)
	}
	return &e, nil
}

// ObjectHash returns the hash of a resource that has no plan hash (devices
// and models): SHA-256 over its canonical JSON (object keys sorted), 96
// bits in hex like pipeline plan hashes.
func ObjectHash(canonicalJSON []byte) string {
	sum := sha256.Sum256(canonicalJSON)
	return hex.EncodeToString(sum[:12])
}
