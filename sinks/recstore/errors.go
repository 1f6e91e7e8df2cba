package recstore

import (
	"errors"
	"fmt"

	"github.com/minio/minio-go/v7"
)

// ErrDenied marks the S3 server refusing a request for want of a
// permission of the store's key (403 AccessDenied): configuration, not a
// server busy or down, which the next run meets again until the key is
// given the permission the error names.
var ErrDenied = errors.New("refused for want of a permission")

// denied wraps err, a request's error, with ErrDenied and the permission
// perm the request needs when the server answered AccessDenied, saying
// what to set; any other error it returns as it is.
func denied(err error, perm string) error {
	if err == nil || minio.ToErrorResponse(err).Code != "AccessDenied" {
		return err
	}
	return fmt.Errorf("%w: %w: give the key of EXPORT_RECORDINGS_S3_ACCESS_KEY %s on the bucket (docs/sinks.md, Recordings)", err, ErrDenied, perm)
}
