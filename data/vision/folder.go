package vision

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ofa-go/ofa/data"
)

// ErrLayout is wrapped by every error about a folder tree that is not a usable dataset:
// no train folder, empty or mismatched class folders, a symlink loop, a bad class list.
var ErrLayout = errors.New("bad dataset layout")

// ClassList is the optional file at the root that fixes the class order: one class (folder)
// name per line. Without it classes are the sorted folder names.
const ClassList = "classes.txt"

// Split folder names, as torchvision and timm accept them.
var (
	trainDirs = []string{"train"}
	valDirs   = []string{"val", "validation", "valid"}
	testDirs  = []string{"test"}
)

// Options says how a folder dataset becomes model inputs.
type Options struct {
	// Size is the input's height and width; 0 takes the images' own size, which must then
	// be one square size for all of them.
	Size int
	// Channels is 1 or 3; 0 chooses from the data: 1 if every image is grey, else 3.
	Channels int
	// ValFraction of each class of train is held out (seeded by Seed, stratified) when
	// there is no validation folder; 0 means 0.1.
	ValFraction float64
	Seed        uint64
	// ByName orders examples by file name across classes instead of class by class (for
	// folders whose file names carry an order, e.g. written from IDX files).
	ByName bool
	// SkipBad skips unreadable or corrupt files and lists them in Description.Skipped;
	// otherwise the first one stops loading with its name.
	SkipBad bool
	// MaxPixels bounds the pixels an image header may declare (0: DefaultMaxPixels).
	MaxPixels int
	// Workers decode in parallel; 0 means runtime.GOMAXPROCS(0).
	Workers int
	// CacheDir holds decoded splits (see Cache); empty means no cache.
	CacheDir string
	// Progress, if set, is called as images are decoded (from one goroutine at a time).
	Progress func(done, total int)
}

// Dataset is a loaded image dataset: the three splits (Test is nil without a test split)
// and what they are.
type Dataset struct {
	Train, Val, Test *data.Images
	Description      data.Description
}

// file is one image file of a split.
type file struct {
	rel   string // path relative to the root, slash-separated
	label int
	split int // 0 train, 1 val, 2 test
	size  int64
	mtime int64
	blob  []byte // the encoded image, for images held in a Parquet file; nil: read rel
}

// IsFolderDataset reports whether root looks like an image-folder dataset: it has a train
// folder holding at least one folder.
func IsFolderDataset(root string) bool {
	entries, err := os.ReadDir(filepath.Join(root, "train"))
	if err != nil {
		return false
	}
	for _, e := range entries {
		if isDirEntry(filepath.Join(root, "train"), e) {
			return true
		}
	}
	return false
}

func isDirEntry(parent string, e fs.DirEntry) bool {
	if e.IsDir() {
		return true
	}
	if e.Type()&fs.ModeSymlink != 0 {
		fi, err := os.Stat(filepath.Join(parent, e.Name()))
		return err == nil && fi.IsDir()
	}
	return false
}

// findSplit returns the first of names that is a folder under root, or "".
func findSplit(root string, names []string) string {
	for _, n := range names {
		if fi, err := os.Stat(filepath.Join(root, n)); err == nil && fi.IsDir() {
			return n
		}
	}
	return ""
}

// LoadFolder reads ROOT/<split>/<class>/<file> into a Dataset. Splits are train (required),
// val or validation (else a stratified, seeded part of train is held out) and test
// (optional: Description.NoTest says it is missing). Classes are the folders of train,
// sorted, or in the order of ROOT/classes.txt; validation and test must have the same
// class folders. Files nest at any depth under a class folder; hidden files (a leading
// dot) are ignored, any other file must be an image.
func LoadFolder(root string, o Options) (*Dataset, error) {
	tr := findSplit(root, trainDirs)
	if tr == "" {
		return nil, fmt.Errorf("vision: %s: %w: no train folder (want %s/train/<class>/<image>)", root, ErrLayout, root)
	}
	classes, err := classFolders(root, tr)
	if err != nil {
		return nil, err
	}
	if classes, err = applyClassList(root, classes); err != nil {
		return nil, err
	}
	if len(classes) > 256 {
		return nil, fmt.Errorf("vision: %s: %w: %d classes, at most 256 are supported", root, ErrLayout, len(classes))
	}
	var skipped []string
	list := func(split string) ([]file, error) {
		files, bad, err := listSplit(root, split, classes, o.SkipBad)
		skipped = append(skipped, bad...)
		return files, err
	}
	trainFiles, err := list(tr)
	if err != nil {
		return nil, err
	}
	var valFiles, testFiles []file
	valFrom := "split"
	if va := findSplit(root, valDirs); va != "" {
		if valFiles, err = list(va); err != nil {
			return nil, err
		}
	} else {
		valFrom = "held-out"
		if trainFiles, valFiles, err = holdOut(root, trainFiles, classes, o); err != nil {
			return nil, err
		}
	}
	te := findSplit(root, testDirs)
	if te != "" {
		if testFiles, err = list(te); err != nil {
			return nil, err
		}
	}
	for _, fl := range [][]file{trainFiles, valFiles, testFiles} {
		sortFiles(fl, o.ByName)
	}

	d, err := decodeSplits(root, data.KindImageFolder, classes, [][]file{trainFiles, valFiles, testFiles}, o)
	if err != nil {
		return nil, err
	}
	d.Description.ValFrom = valFrom
	d.Description.Skipped = append(skipped, d.Description.Skipped...)
	if te == "" {
		d.Test = nil
		d.Description.NoTest = true
	}
	return d, nil
}

// classFolders returns the sorted class folder names of a split.
func classFolders(root, split string) ([]string, error) {
	dir := filepath.Join(root, split)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("vision: %w", err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if !isDirEntry(dir, e) {
			return nil, fmt.Errorf("vision: %s: %w: a file directly in the split folder; images go in class folders (%s/<class>/<image>)",
				filepath.Join(dir, e.Name()), ErrLayout, dir)
		}
		names = append(names, e.Name())
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("vision: %s: %w: no class folders", dir, ErrLayout)
	}
	slices.Sort(names)
	return names, nil
}

// applyClassList reorders classes as ROOT/classes.txt says, if it exists; it must name
// exactly the class folders.
func applyClassList(root string, folders []string) ([]string, error) {
	path := filepath.Join(root, ClassList)
	b, err := data.ReadFileLimited(path, 1<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return folders, nil
	}
	if err != nil {
		return nil, fmt.Errorf("vision: %w", err)
	}
	names, err := data.ParseClassNames(string(b), path)
	if err != nil {
		return nil, err
	}
	a, c := slices.Clone(names), slices.Clone(folders)
	slices.Sort(a)
	if !slices.Equal(a, c) {
		return nil, fmt.Errorf("vision: %s: %w: it names %v, the train folder has class folders %v", path, ErrLayout, names, folders)
	}
	return names, nil
}

// listSplit lists the image files of every class folder of a split. Bad entries (non-image
// files, unreadable folders) stop it unless skipBad, which returns them as skipped.
func listSplit(root, split string, classes []string, skipBad bool) ([]file, []string, error) {
	have, err := classFolders(root, split)
	if err != nil {
		return nil, nil, err
	}
	if want := slices.Sorted(slices.Values(classes)); !slices.Equal(have, want) {
		return nil, nil, fmt.Errorf("vision: %s: %w: class folders %v differ from train's %v",
			filepath.Join(root, split), ErrLayout, have, want)
	}
	var files []file
	var skipped []string
	for label, cls := range classes {
		n := 0
		bad := func(path string, e error) error {
			if skipBad {
				skipped = append(skipped, fmt.Sprintf("%s: %v", path, e))
				return nil
			}
			return e
		}
		err := walk(filepath.Join(root, split, cls), map[string]bool{}, func(path string, fi fs.FileInfo, werr error) error {
			if werr != nil {
				return bad(path, werr)
			}
			if !IsImageName(path) {
				return bad(path, fmt.Errorf("vision: %s: %w: not an image file (extensions read: .png .jpg .jpeg .gif .bmp .tif .tiff .webp)", path, ErrBadImage))
			}
			rel, _ := filepath.Rel(root, path)
			files = append(files, file{rel: filepath.ToSlash(rel), label: label, size: fi.Size(), mtime: fi.ModTime().UnixNano()})
			n++
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
		if n == 0 {
			return nil, nil, fmt.Errorf("vision: %s: %w: empty class folder (no images)", filepath.Join(root, split, cls), ErrLayout)
		}
	}
	return files, skipped, nil
}

// walk calls fn for every regular file under dir in lexical order, following symbolic
// links to folders and refusing a loop (a folder that contains itself).
func walk(dir string, onPath map[string]bool, fn func(string, fs.FileInfo, error) error) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fn(dir, nil, fmt.Errorf("vision: %w", err))
	}
	if onPath[real] {
		return fmt.Errorf("vision: %s: %w: symbolic link loop (leads back to %s)", dir, ErrLayout, real)
	}
	onPath[real] = true
	defer delete(onPath, real)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fn(dir, nil, fmt.Errorf("vision: %w", err))
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		fi, err := os.Stat(path)
		if err != nil {
			if err := fn(path, nil, fmt.Errorf("vision: %w", err)); err != nil {
				return err
			}
			continue
		}
		if fi.IsDir() {
			if err := walk(path, onPath, fn); err != nil {
				return err
			}
			continue
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		if err := fn(path, fi, nil); err != nil {
			return err
		}
	}
	return nil
}

// holdOut moves a seeded, stratified ValFraction of each class of train to validation.
func holdOut(root string, files []file, classes []string, o Options) (train, val []file, err error) {
	frac := o.ValFraction
	if frac == 0 {
		frac = 0.1
	}
	if !(frac > 0 && frac < 1) {
		return nil, nil, fmt.Errorf("vision: validation fraction %v, want between 0 and 1", frac)
	}
	byClass := make([][]file, len(classes))
	for _, f := range files {
		byClass[f.label] = append(byClass[f.label], f)
	}
	for label, fl := range byClass {
		if len(fl) < 2 {
			return nil, nil, fmt.Errorf("vision: %s: %w: class %q has %d image in train; holding out validation (there is no val folder) needs at least 2 per class",
				filepath.Join(root, "train", classes[label]), ErrLayout, classes[label], len(fl))
		}
		sortFiles(fl, false)
		rng := rand.New(rand.NewPCG(o.Seed, data.Mix64(uint64(label)+0x484f4c444f5554)))
		perm := rng.Perm(len(fl))
		k := min(max(1, int(frac*float64(len(fl))+0.5)), len(fl)-1)
		for i, p := range perm {
			if i < k {
				val = append(val, fl[p])
			} else {
				train = append(train, fl[p])
			}
		}
	}
	return train, val, nil
}

// sortFiles orders files by class then path (ImageFolder's order), or by file name, then
// class, then path.
func sortFiles(fl []file, byName bool) {
	slices.SortFunc(fl, func(a, b file) int {
		if byName {
			if c := strings.Compare(filepath.Base(a.rel), filepath.Base(b.rel)); c != 0 {
				return c
			}
		}
		if a.label != b.label {
			return a.label - b.label
		}
		return strings.Compare(a.rel, b.rel)
	})
}

// fingerprint hashes what identifies a split list and its preprocessing.
func fingerprint(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s\n", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func listKey(fl []file) string {
	var b strings.Builder
	for _, f := range fl {
		fmt.Fprintf(&b, "%s\x00%d\x00%d\x00%d\n", f.rel, f.label, f.size, f.mtime)
	}
	return b.String()
}
