package controller

// The CRDs in deploy/crds and the deep copies of the API types are
// generated from the Go types; TestCRDsUpToDate fails when they are stale.
//go:generate go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.17.3 object paths=./apis/... paths=../pipeline
//go:generate go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.17.3 crd:crdVersions=v1,maxDescLen=400 paths=./apis/eddy/... output:crd:dir=../deploy/crds/eddy
//go:generate go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.17.3 crd:crdVersions=v1,maxDescLen=400 paths=./apis/devices/... paths=./apis/rules/... output:crd:dir=../deploy/crds/kubeedge
