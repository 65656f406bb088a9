//go:build !unix

package checkpoint

import "os"

// openThrough opens the character device or named pipe at path for writing.
func openThrough(path string) (*os.File, error) { return os.OpenFile(path, os.O_WRONLY, 0) }
