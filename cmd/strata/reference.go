package main

import (
	"fmt"
	"strings"
)

// Markers around the generated config reference in README.md.
const (
	referenceBegin = "<!-- BEGIN CONFIG REFERENCE: generated from cmd/strata/keys.go by `make docs`; DO NOT EDIT -->"
	referenceEnd   = "<!-- END CONFIG REFERENCE -->"
)

// configReference renders the key table as Markdown for the README.
func configReference() string {
	var b strings.Builder
	b.WriteString("| Key | Flag | Environment | Type | Default | Meaning |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- |\n")
	for i := range configKeys {
		k := &configKeys[i]
		flag := ""
		if k.flag {
			flag = "`--" + k.Name + "`"
		}
		def := "(empty)"
		if d := k.defaultString(); d != "" {
			def = "`" + d + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s | %s | %s |\n",
			k.Name, flag, k.Env(), k.typeName(), def, strings.ReplaceAll(k.Doc, "|", `\|`))
	}
	return b.String()
}
