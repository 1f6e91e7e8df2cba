package recstoretest

import (
	"os"
	"strings"
	"testing"
)

// TestCIInstallsThisVersion: .ci/run installs the version the tests name
// when they say how to install it.
func TestCIInstallsThisVersion(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\nversitygw_version="+VersityGWVersion+"\n") {
		t.Errorf(".ci/run does not install versitygw %s (no line versitygw_version=%s)", VersityGWVersion, VersityGWVersion)
	}
}

// TestStart: the server serves its bucket.
func TestStart(t *testing.T) {
	t.Parallel()
	s := Start(t)
	ok, err := s.Client(t).BucketExists(t.Context(), s.Bucket)
	if err != nil || !ok {
		t.Fatalf("bucket %s: %v, %v", s.Bucket, ok, err)
	}
}
