// kubelet-writer writes a payload into a volume directory exactly as the
// kubelet does for ConfigMap, Secret and projected volumes, by calling the
// kubelet's own AtomicWriter. rekindle's tests use it so that they watch real
// `..data` swaps rather than an imitation of them.
//
// Usage: kubelet-writer TARGET_DIR < payload.json
//
// The payload is a JSON object mapping each key (a relative path, nested paths
// allowed) to {"data": "<base64>", "mode": 420}; a missing mode means 0644.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	volumeutil "k8s.io/kubernetes/pkg/volume/util"
)

type file struct {
	// encoding/json decodes base64 strings into []byte.
	Data []byte `json:"data"`
	Mode *int32 `json:"mode"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: kubelet-writer TARGET_DIR < payload.json")
		os.Exit(2)
	}
	var files map[string]file
	if err := json.NewDecoder(os.Stdin).Decode(&files); err != nil {
		fmt.Fprintf(os.Stderr, "kubelet-writer: reading the payload: %v\n", err)
		os.Exit(2)
	}
	payload := make(map[string]volumeutil.FileProjection, len(files))
	for key, f := range files {
		mode := int32(0644)
		if f.Mode != nil {
			mode = *f.Mode
		}
		payload[key] = volumeutil.FileProjection{Data: f.Data, Mode: mode}
	}
	writer, err := volumeutil.NewAtomicWriter(os.Args[1], "rekindle-kubelet-writer")
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubelet-writer: %v\n", err)
		os.Exit(1)
	}
	if err := writer.Write(payload); err != nil {
		fmt.Fprintf(os.Stderr, "kubelet-writer: %v\n", err)
		os.Exit(1)
	}
}
