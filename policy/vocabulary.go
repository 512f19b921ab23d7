package policy

import (
	"embed"
	"slices"
	"strings"
)

// The shared vocabulary (docs/vocabulary.md): one JSON Schema (draft
// 2020-12) per standard collection, so that an organization knows what to
// ask for. Importers write these shapes; the owner's own collections stay
// free-form, and nothing here is enforced on the owner's writes. The
// discovery document advertises the version, never what an owner holds.

// VocabularyVersion is the version of the standard collections' shapes.
const VocabularyVersion = "1"

//go:embed vocabulary/*.schema.json
var vocabularyFS embed.FS

// VocabularyCollections lists the standard collections, sorted.
func VocabularyCollections() []string {
	ents, err := vocabularyFS.ReadDir("vocabulary")
	if err != nil {
		panic(err) // embedded at build time
	}
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".schema.json"))
	}
	slices.Sort(out)
	return out
}

// VocabularySchema returns the JSON Schema of a standard collection.
func VocabularySchema(collection string) ([]byte, bool) {
	if ValidateCollection(collection) != nil {
		return nil, false
	}
	b, err := vocabularyFS.ReadFile("vocabulary/" + collection + ".schema.json")
	return b, err == nil
}
