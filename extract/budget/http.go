package budget

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// newHTTPClient returns a client of its own for one Fetch, so that its connections are
// closed when the fetch ends instead of lingering in the shared default pool. Deadlines
// come from each request's context, not from the client.
func newHTTPClient() *http.Client {
	return &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
}

// httpAttempt GETs rawURL once and returns the body of a 200 response of at most
// maxBytes bytes.
func httpAttempt(ctx context.Context, client *http.Client, rawURL string, maxBytes int64) ([]byte, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, false, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		// *url.Error repeats the method and URL, which the caller adds anyway.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, transientNetError(err), err
	}
	// Closing without draining drops the connection, which is what an oversized or
	// unwanted body deserves.
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		code := resp.StatusCode
		return nil, code >= 500 || code == http.StatusTooManyRequests, fmt.Errorf("HTTP %d", code)
	}
	if resp.ContentLength > maxBytes {
		return nil, false, &tooLargeError{limit: maxBytes, unread: true}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBytes+1))
	if err != nil {
		return nil, transientNetError(err), fmt.Errorf("reading the response: %w", err)
	}
	if int64(len(data)) > maxBytes {
		return nil, false, &tooLargeError{limit: maxBytes}
	}
	return data, false, nil
}
