package pseudonym

// Tag is the keyed hash of v in domain, 16 letters and digits (80 bits of
// HMAC-SHA-256, as a pseudonym's): for a value that must be told apart
// from others by someone who holds no key, without anyone who holds no
// key being able to test a guess of v against it. A recording stored
// under a hash of its path, which holds the caller's number, is named
// by one (exporter/recordings, StoredID). domain keeps a tag from ever
// being a pseudonym's hash of the same text, and from another domain's.
func (k *Keyed) Tag(domain, v string) string {
	return k.mac("tag:"+domain, v)
}
