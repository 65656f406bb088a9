package vision

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"

	"github.com/ofa-go/ofa/data"
)

// ErrParquet is wrapped by every error about a Parquet file that is not a usable image
// dataset: unreadable, no image or label column, a label out of range.
var ErrParquet = errors.New("bad Parquet dataset")

// parquetFiles lists the .parquet files under root (at most three folders deep), sorted.
func parquetFiles(root string) []string {
	var out []string
	base := strings.Count(filepath.Clean(root), string(filepath.Separator))
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && path != root || strings.Count(path, string(filepath.Separator))-base > 3 {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(strings.ToLower(d.Name()), ".parquet") {
			out = append(out, path)
		}
		return nil
	})
	slices.Sort(out)
	return out
}

// IsParquetDataset reports whether root holds Parquet files (at most three folders deep).
func IsParquetDataset(root string) bool { return len(parquetFiles(root)) > 0 }

// parquetSplit tells a file's split from its name or folders, as the Hugging Face Hub
// names them: train-00000-of-00002.parquet, data/validation-*.parquet, test/0000.parquet.
func parquetSplit(root, path string) int {
	rel, _ := filepath.Rel(root, path)
	parts := strings.Split(filepath.ToSlash(rel), "/")
	for i := len(parts) - 1; i >= 0; i-- {
		name := strings.ToLower(parts[i])
		name = strings.TrimSuffix(name, ".parquet")
		head := strings.FieldsFunc(name, func(r rune) bool { return r == '-' || r == '_' || r == '.' })
		if len(head) == 0 {
			continue
		}
		switch head[0] {
		case "train":
			return 0
		case "validation", "val", "valid", "dev":
			return 1
		case "test":
			return 2
		}
	}
	return -1
}

// hfFeatures is the part of the Hugging Face metadata ("huggingface" key) that names the
// label classes.
type hfFeatures struct {
	Info struct {
		Features map[string]struct {
			Type  string   `json:"_type"`
			Names []string `json:"names"`
		} `json:"features"`
	} `json:"info"`
}

// LoadParquet reads a Hugging Face image-classification dataset in Parquet: files under
// root whose name or folder says train, validation (or val) and test, each with an image
// column (a struct of bytes and path, the datasets library's Image feature) and an integer
// label column. Classes are the label feature's names from the files' Hugging Face
// metadata if present, else the label numbers. Images are held encoded in memory while
// they are decoded (into the cache, if set); splits and hold-out are as for LoadFolder.
func LoadParquet(root string, o Options) (*Dataset, error) {
	paths := parquetFiles(root)
	var splits [3][]file
	var names []string
	maxLabel := -1
	var skipped []string
	for _, path := range paths {
		k := parquetSplit(root, path)
		if k < 0 {
			return nil, fmt.Errorf("vision: %s: %w: cannot tell the split from the name (want train, validation or test in the file or folder name)", path, ErrParquet)
		}
		files, fileNames, err := readParquet(root, path, o.SkipBad, &skipped)
		if err != nil {
			return nil, err
		}
		if fileNames != nil {
			if names != nil && !slices.Equal(names, fileNames) {
				return nil, fmt.Errorf("vision: %s: %w: its label names %v differ from another file's %v", path, ErrParquet, fileNames, names)
			}
			names = fileNames
		}
		for i := range files {
			files[i].split = k
			maxLabel = max(maxLabel, files[i].label)
		}
		splits[k] = append(splits[k], files...)
	}
	if len(splits[0]) == 0 {
		return nil, fmt.Errorf("vision: %s: %w: no training rows (want a Parquet file whose name or folder says train)", root, ErrParquet)
	}
	if names == nil {
		for l := range maxLabel + 1 {
			names = append(names, strconv.Itoa(l))
		}
	}
	if len(names) > 256 {
		return nil, fmt.Errorf("vision: %s: %w: %d classes, at most 256 are supported", root, ErrParquet, len(names))
	}
	for _, s := range splits {
		for _, f := range s {
			if f.label >= len(names) {
				return nil, fmt.Errorf("vision: %s: %w: label %d out of range: the label feature names %d classes", f.rel, ErrParquet, f.label, len(names))
			}
		}
	}
	valFrom := "split"
	if len(splits[1]) == 0 {
		valFrom = "held-out"
		var err error
		if splits[0], splits[1], err = holdOut(root, splits[0], names, o); err != nil {
			return nil, err
		}
	}
	d, err := decodeSplits(root, data.KindParquet, names, splits[:], o)
	if err != nil {
		return nil, err
	}
	d.Description.ValFrom = valFrom
	d.Description.Skipped = append(skipped, d.Description.Skipped...)
	if len(splits[2]) == 0 {
		d.Test = nil
		d.Description.NoTest = true
	}
	return d, nil
}

// readParquet reads the rows of one file: the encoded image and the label of each; names
// is nil unless the file's metadata names the label classes.
func readParquet(root, path string, skipBad bool, skipped *[]string) (files []file, names []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("vision: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("vision: %w", err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("vision: %s: %w: %s", path, ErrParquet, fmt.Sprintf(format, args...))
	}
	pf, err := parquet.OpenFile(f, fi.Size())
	if err != nil {
		return nil, nil, bad("%v", err)
	}
	labelName, imageName := "", ""
	for _, c := range []string{"label", "labels", "fine_label"} {
		if _, ok := pf.Schema().Lookup(c); ok {
			labelName = c
			break
		}
	}
	for _, c := range []string{"image", "img"} {
		if _, ok := pf.Schema().Lookup(c, "bytes"); ok {
			imageName = c
			break
		}
	}
	if labelName == "" || imageName == "" {
		return nil, nil, bad("want an image column (a struct with bytes, as the datasets library writes) and a label column; the schema is %s",
			strings.Join(strings.Fields(pf.Schema().String()), " "))
	}
	labelCol, _ := pf.Schema().Lookup(labelName)
	bytesCol, _ := pf.Schema().Lookup(imageName, "bytes")
	if meta, ok := pf.Lookup("huggingface"); ok {
		var hf hfFeatures
		if err := json.Unmarshal([]byte(meta), &hf); err == nil {
			if ft, ok := hf.Info.Features[labelName]; ok && ft.Type == "ClassLabel" && len(ft.Names) > 0 {
				names = ft.Names
			}
		}
	}
	rel, _ := filepath.Rel(root, path)
	rel = filepath.ToSlash(rel)
	row := 0
	buf := make([]parquet.Row, 64)
	for _, rg := range pf.RowGroups() {
		rows := rg.Rows()
		for {
			n, err := rows.ReadRows(buf)
			for _, r := range buf[:n] {
				name := fmt.Sprintf("%s[row %d]", rel, row)
				row++
				var blob []byte
				label, haveLabel := 0, false
				for _, v := range r {
					switch v.Column() {
					case bytesCol.ColumnIndex:
						if !v.IsNull() {
							blob = slices.Clone(v.ByteArray())
						}
					case labelCol.ColumnIndex:
						if !v.IsNull() {
							label, haveLabel = int(v.Int64()), true
						}
					}
				}
				var rowErr error
				switch {
				case !haveLabel:
					rowErr = fmt.Errorf("vision: %s: %w: no label", name, ErrParquet)
				case label < 0 || label > 255:
					rowErr = fmt.Errorf("vision: %s: %w: label %d out of range (want 0 to 255)", name, ErrParquet, label)
				case len(blob) == 0:
					rowErr = fmt.Errorf("vision: %s: %w: no image bytes", name, ErrParquet)
				}
				if rowErr != nil {
					if !skipBad {
						rows.Close()
						return nil, nil, rowErr
					}
					*skipped = append(*skipped, rowErr.Error())
					continue
				}
				files = append(files, file{rel: name, label: label, size: fi.Size(), mtime: fi.ModTime().UnixNano(), blob: blob})
			}
			if err != nil {
				rows.Close()
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, nil, bad("row %d: %v", row, err)
			}
		}
	}
	return files, names, nil
}
