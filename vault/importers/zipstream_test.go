package importers

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"os"
	"strings"
	"testing"
)

type zipFile struct {
	name   string
	data   []byte
	stored bool // method 0 with sizes in the header (CreateRaw)
}

// makeZip writes an archive with archive/zip: deflated entries get a data
// descriptor (flag bit 3), as archive/zip and most phone exporters write
// them.
func makeZip(t *testing.T, files ...zipFile) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, f := range files {
		if f.stored {
			w, err := zw.CreateRaw(&zip.FileHeader{Name: f.name, Method: zip.Store, CRC32: crc32.ChecksumIEEE(f.data),
				CompressedSize64: uint64(len(f.data)), UncompressedSize64: uint64(len(f.data))})
			if err != nil {
				t.Fatal(err)
			}
			w.Write(f.data)
			continue
		}
		w, err := zw.Create(f.name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(f.data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func canonItems(t *testing.T, items []Item) string {
	b, err := json.Marshal(items)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// export.zip reads as the export.xml inside it, whatever comes before it
// (deflated, stored) and after it.
func TestAppleHealthZip(t *testing.T) {
	path := fixtures(t, "applehealth", "healthkit-to-sqlite-export.xml")
	want, err := parseFile(t, appleFormat, path)
	if err != nil {
		t.Fatal(err)
	}
	xml, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	z := makeZip(t,
		zipFile{name: "apple_health_export/export_cda.xml", data: bytes.Repeat([]byte("<ClinicalDocument/>\n"), 5000)},
		zipFile{name: "apple_health_export/workout-routes/route_1.gpx", data: []byte("<gpx>no newline for a long time" + strings.Repeat("x", 3000) + "</gpx>"), stored: true},
		zipFile{name: "apple_health_export/export.xml", data: xml},
		zipFile{name: "apple_health_export/electrocardiograms/ecg_1.csv", data: []byte("Name,x\n")},
	)
	if f, ok := Detect(z[:min(len(z), HeadSize)]); !ok || f.Name != "applehealth" {
		t.Fatalf("export.zip detected as %q", f.Name)
	}
	got, err := parseString(appleFormat, string(z))
	if err != nil {
		t.Fatal(err)
	}
	if canonItems(t, got) != canonItems(t, want) {
		t.Fatalf("items from the zip differ from the XML's:\n%s\n%s", canonItems(t, got), canonItems(t, want))
	}
}

// zip64Entry writes one deflated entry by hand as a writer of archives
// over 4 GiB does: sizes 0xffffffff in the header, a ZIP64 extra field,
// and a data descriptor with 8-byte sizes (APPNOTE 4.3.9.1).
func zip64Entry(name string, data []byte) []byte {
	var comp bytes.Buffer
	fw, _ := flate.NewWriter(&comp, flate.BestSpeed)
	fw.Write(data)
	fw.Close()
	le := binary.LittleEndian
	var b bytes.Buffer
	b.Write([]byte("PK\x03\x04"))
	b.Write(le.AppendUint16(nil, 45)) // version needed
	b.Write(le.AppendUint16(nil, 8))  // flags: data descriptor
	b.Write(le.AppendUint16(nil, 8))  // deflate
	b.Write(le.AppendUint32(nil, 0))  // time, date
	b.Write(le.AppendUint32(nil, 0))  // crc: in the descriptor
	b.Write(le.AppendUint32(nil, ^uint32(0)))
	b.Write(le.AppendUint32(nil, ^uint32(0)))
	b.Write(le.AppendUint16(nil, uint16(len(name))))
	b.Write(le.AppendUint16(nil, 20))
	b.WriteString(name)
	b.Write(le.AppendUint16(nil, 1))
	b.Write(le.AppendUint16(nil, 16))
	b.Write(le.AppendUint64(nil, 0))
	b.Write(le.AppendUint64(nil, 0))
	b.Write(comp.Bytes())
	b.Write([]byte("PK\x07\x08"))
	b.Write(le.AppendUint32(nil, crc32.ChecksumIEEE(data)))
	b.Write(le.AppendUint64(nil, uint64(comp.Len())))
	b.Write(le.AppendUint64(nil, uint64(len(data))))
	return b.Bytes()
}

func TestAppleHealthZip64(t *testing.T) {
	doc := appleDoc(appleRec)
	in := string(zip64Entry("apple_health_export/export_cda.xml", []byte("<x/>"))) + string(zip64Entry("apple_health_export/export.xml", []byte(doc))) + "PK\x01\x02"
	items, err := parseString(appleFormat, in)
	if err != nil || len(items) != 1 {
		t.Fatalf("%d items, %v", len(items), err)
	}
}

func TestAppleHealthZipMalformed(t *testing.T) {
	doc := []byte(appleDoc(appleRec))
	good := makeZip(t, zipFile{name: "apple_health_export/export.xml", data: doc})
	flip := func(b []byte, at int) string {
		c := bytes.Clone(b)
		c[at] ^= 0xff
		return string(c)
	}
	// The CRC-32 of a stored entry, changed in its header.
	stored := makeZip(t, zipFile{name: "apple_health_export/export.xml", data: doc, stored: true})
	badCRC := bytes.Clone(stored)
	le := binary.LittleEndian
	le.PutUint32(badCRC[14:], le.Uint32(badCRC[14:])+1)
	encrypted := bytes.Clone(good)
	le.PutUint16(encrypted[6:], le.Uint16(encrypted[6:])|1)
	bzip := bytes.Clone(good)
	le.PutUint16(bzip[8:], 12)
	storedDescriptor := bytes.Clone(stored)
	le.PutUint16(storedDescriptor[6:], 8)
	for _, tc := range []struct{ name, in, code string }{
		{"no export.xml", string(makeZip(t, zipFile{name: "apple_health_export/export_cda.xml", data: []byte("<x/>")})), "applehealth_zip_no_export"},
		{"empty archive", string(makeZip(t)), "applehealth_zip_no_export"},
		{"truncated", string(good[:len(good)/2]), "applehealth_zip_corrupt"},
		{"header cut", "PK\x03\x04\x14\x00", "applehealth_zip_corrupt"},
		{"deflate stream damaged", flip(good, 30+len("apple_health_export/export.xml")+2), "applehealth_zip_corrupt"},
		{"crc mismatch", string(badCRC), "applehealth_zip_corrupt"},
		{"encrypted", string(encrypted), "applehealth_zip_unsupported"},
		{"bzip2", string(bzip), "applehealth_zip_unsupported"},
		{"stored, length unknown", string(storedDescriptor), "applehealth_zip_unsupported"},
		{"export.xml malformed inside", string(makeZip(t, zipFile{name: "apple_health_export/export.xml", data: doc[:200]})), "applehealth_truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseString(appleFormat, tc.in)
			wantCode(t, err, tc.code)
		})
	}
}

// A small archive that inflates past the bound is refused, not inflated
// without end.
func TestZipInflateBound(t *testing.T) {
	z := newZipStream(bytes.NewReader(makeZip(t, zipFile{name: "a", data: make([]byte, 1<<20)})))
	z.out = maxZipOut - 1000
	_, _, err := z.open(func(string) bool { return false })
	if err != errZipTooLarge {
		t.Fatalf("err %v", err)
	}
}
