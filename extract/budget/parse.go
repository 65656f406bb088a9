package budget

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Parse reads a target from JSON, strictly: the document must be exactly one object
// whose keys are among params_multiple, params, macs and latency_ms (matched exactly,
// case included), each at most once, each a JSON number (not a string, null or bool),
// with nothing but white space after the object. An explicit zero is an error (leave
// the field out for no limit); numbers too large for a float64, and fractional or
// overflowing counts, are errors too. The result is validated.
//
// source names where data came from (a file name, a URL) and begins every error, which
// then names the field, e.g. `budget: b.json: target.params_multiple: got "four", want a
// number`. Errors about the content wrap ErrInvalid.
func Parse(data []byte, source string) (Target, error) {
	t, err := parseJSON(data)
	if err != nil {
		return Target{}, fmt.Errorf("budget: %s: %w", source, err)
	}
	return t, nil
}

func parseJSON(data []byte) (Target, error) {
	var t Target
	if len(bytes.TrimSpace(data)) == 0 {
		return t, errField("", "empty document, want a JSON object")
	}
	// The decoder's token stream is lax (it splits "01" into two numbers) and its error
	// offsets are unreliable, so check the syntax of the whole document first.
	if !json.Valid(data) {
		return t, syntaxError(json.Unmarshal(data, new(any)))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return t, syntaxError(err)
	}
	if tok != json.Delim('{') {
		return t, errField("", "got %s, want a JSON object", describe(tok))
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return t, syntaxError(err)
		}
		key := tok.(string) // the decoder only yields strings in key position
		if !isField(key) {
			return t, errField(printable(key), "unknown field, want one of %s", strings.Join(fieldNames, ", "))
		}
		if seen[key] {
			return t, errField(key, "duplicate field")
		}
		seen[key] = true
		tok, err = dec.Token()
		if err != nil {
			return t, syntaxError(err)
		}
		num, ok := tok.(json.Number)
		if !ok {
			return t, errField(key, "got %s, want a number", describe(tok))
		}
		if err := setField(&t, key, string(num)); err != nil {
			return t, err
		}
	}
	// json.Valid saw to it that only the closing brace and white space are left.
	return t, t.Validate()
}

func isField(key string) bool {
	for _, f := range fieldNames {
		if key == f {
			return true
		}
	}
	return false
}

// printable returns key as it is when it looks like a field name, quoted otherwise, so
// that an error message cannot be garbled by what a server sent.
func printable(key string) string {
	for _, r := range key {
		if !(r == '_' || r == '-' || r == '.' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return strconv.Quote(key)
		}
	}
	if key == "" {
		return `""`
	}
	return key
}

// describe names a JSON token the way an error message should show it.
func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' {
			return "an object"
		}
		return "an array"
	case string:
		if r := []rune(v); len(r) > 40 {
			return fmt.Sprintf("%q...", string(r[:40]))
		}
		return fmt.Sprintf("%q", v)
	case nil:
		return "null"
	case json.Number:
		return string(v)
	default:
		return fmt.Sprint(v)
	}
}

// syntaxError turns a decoder error into a target error that says where the JSON broke.
func syntaxError(err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se) && strings.Contains(se.Error(), "after top-level value"):
		return errField("", "trailing data after the JSON object, at byte %d", se.Offset)
	case errors.As(err, &se) && strings.Contains(se.Error(), "unexpected end"):
		return errField("", "invalid JSON: unexpected end of input")
	case errors.As(err, &se):
		// Offset counts the bytes read, the offending one included.
		return errField("", "invalid JSON at byte %d: %v", se.Offset, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errField("", "invalid JSON: unexpected end of input")
	default:
		return errField("", "invalid JSON: %v", err)
	}
}
