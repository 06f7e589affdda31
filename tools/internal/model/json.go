package model

import (
	"encoding/json"

	"ordermesh.local/tools/internal/manifest"
)

func jsonOf(o *manifest.Object) ([]byte, error) { return json.Marshal(o.Obj) }
