package emulator

import "testing"

// The SDK sends whole bodies over plain HTTP; other clients stream
// aws-chunked bodies, with chunk signatures or a trailing checksum.
func TestDecodeAWSChunked(t *testing.T) {
	tests := []struct {
		name, in, want string
		bad            bool
	}{
		{"signed chunks", "5;chunk-signature=abc\r\nhello\r\n6;chunk-signature=def\r\n world\r\n0;chunk-signature=0\r\n\r\n", "hello world", false},
		{"trailer", "b\r\nhello world\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n", "hello world", false},
		{"empty", "0\r\n\r\n", "", false},
		{"short chunk", "a\r\nhello\r\n", "", true},
		{"bad size", "zz\r\nhello\r\n0\r\n\r\n", "", true},
		{"no end", "5\r\nhello\r\n", "", true},
		{"no crlf after data", "5\r\nhelloX0\r\n\r\n", "", true},
	}
	for _, tt := range tests {
		got, err := decodeAWSChunked([]byte(tt.in))
		if tt.bad != (err != nil) || string(got) != tt.want {
			t.Errorf("%s: %q, %v; want %q (error %v)", tt.name, got, err, tt.want, tt.bad)
		}
	}
}

func TestSplitS3(t *testing.T) {
	tests := []struct{ uri, bucket, key string }{
		{"s3://logs/emr/", "logs", "emr/"},
		{"s3n://logs", "logs", ""},
		{"s3a://b/k/x", "b", "k/x"},
	}
	for _, tt := range tests {
		if b, k, ok := splitS3(tt.uri); !ok || b != tt.bucket || k != tt.key {
			t.Errorf("splitS3(%q) = %q, %q, %v", tt.uri, b, k, ok)
		}
	}
	for _, bad := range []string{"", "https://logs/x", "s3://", "logs/x"} {
		if _, _, ok := splitS3(bad); ok {
			t.Errorf("splitS3(%q) took it", bad)
		}
	}
}
