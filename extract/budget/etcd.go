package budget

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// etcdFrom is the display name of a key: etcd://<host>[,<host>...]/<key>.
func etcdFrom(endpoints []string, key string) string {
	hosts := make([]string, len(endpoints))
	for i, e := range endpoints {
		hosts[i] = e
		if u, err := url.Parse(e); err == nil && u.Host != "" {
			hosts[i] = u.Host
		}
	}
	return "etcd://" + strings.Join(hosts, ",") + "/" + strings.TrimPrefix(key, "/")
}

// rangeOverhead bounds what a RangeResponse holding one key-value pair adds to the key
// and the value: the header's four 64-bit varints, the pair's four more and the count,
// each with its tag, plus the length prefixes of the embedded messages and of the key
// and value (TestRecvLimit checks it against the encoding of a worst case).
const rangeOverhead = 256

// recvLimit is the largest gRPC response a Get of key may receive when the value may
// hold at most maxBytes bytes. gRPC refuses a longer response from its length prefix,
// before reading it.
func recvLimit(key string, maxBytes int64) int {
	room := int64(len(key)) + rangeOverhead
	if maxBytes > math.MaxInt32-room {
		return math.MaxInt32 // gRPC's own limit
	}
	return int(maxBytes + room)
}

// etcdAttempt reads key once from the etcd cluster at endpoints and returns its value
// of at most maxBytes bytes, giving up when ctx ends.
//
// Each attempt has a client of its own, closed when it ends: a retry then dials
// afresh instead of waiting out the reconnection backoff that gRPC keeps per client
// (a second and growing), and a Fetch leaves no connection behind. The client waits
// for a connection until ctx ends rather than failing at the first refused dial, so an
// unreachable cluster costs the whole Timeout, and reads are linearizable: a member cut
// off from the quorum does not answer.
func etcdAttempt(ctx context.Context, endpoints []string, key string, timeout time.Duration, maxBytes int64) ([]byte, bool, error) {
	client, err := clientv3.New(clientv3.Config{
		Endpoints:          endpoints,
		DialTimeout:        timeout,
		Context:            ctx,
		MaxCallRecvMsgSize: recvLimit(key, maxBytes),
		Logger:             zap.NewNop(), // failures are returned, not logged
	})
	if err != nil {
		return etcdFailure(ctx, err, maxBytes)
	}
	defer client.Close()
	resp, err := client.Get(ctx, key, clientv3.WithLimit(1))
	if err != nil {
		return etcdFailure(ctx, err, maxBytes)
	}
	if len(resp.Kvs) == 0 {
		return nil, false, fmt.Errorf("key %q not found", key)
	}
	value := resp.Kvs[0].Value
	if int64(len(value)) > maxBytes {
		return nil, false, &tooLargeError{limit: maxBytes}
	}
	return value, false, nil
}

// etcdFailure classifies an error of the etcd client: transient when the cluster could
// not be reached or answered that it is unavailable or overloaded, definite otherwise.
func etcdFailure(ctx context.Context, err error, maxBytes int64) ([]byte, bool, error) {
	if ctx.Err() != nil {
		// The client waits for a connection until the deadline, so the cause of an
		// unreachable cluster is just that.
		return nil, true, ctx.Err()
	}
	// The client turns the errors etcd itself sends into rpctypes.EtcdError; what is
	// left as a gRPC status came from the transport or from gRPC's client side.
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return nil, transientCode(ee.Code()), err
	}
	if st, ok := status.FromError(err); ok {
		if st.Code() == codes.ResourceExhausted {
			// gRPC's receive limit (recvLimit): the response was not read.
			return nil, false, &tooLargeError{limit: maxBytes, unread: true}
		}
		return nil, transientCode(st.Code()), errors.New(st.Message())
	}
	return nil, transientNetError(err), err
}

// transientCode reports whether a gRPC status code means the cluster may answer a
// later attempt.
func transientCode(c codes.Code) bool {
	switch c {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		return true
	}
	return false
}
