package budget

// Size is a number of bytes written with a unit in configuration ("64MiB",
// "4GiB", or a plain number of bytes); see Parse and Format. Its zero value
// means "not set".
type Size int64

// UnmarshalText parses a size such as 64MiB (used by flags and the YAML
// decoder).
func (s *Size) UnmarshalText(b []byte) error {
	n, err := Parse(string(b))
	if err != nil {
		return err
	}
	*s = Size(n)
	return nil
}

// MarshalText writes the size with its unit.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// String prints the size with a binary unit; the zero size is "0".
func (s Size) String() string {
	if s == 0 {
		return "0"
	}
	return Format(int64(s))
}
