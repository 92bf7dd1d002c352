package controller

// The CRDs in deploy/crds and the deep copies of the API types are
// generated from the Go types; TestCRDsUpToDate and TestDeepCopiesUpToDate
// fail when they are stale. controller-gen writes the deep copies with an
// empty import block and unnamed version imports; goimports tidies them so
// that the committed files pass goimports -l like the rest of the tree.
//go:generate go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.17.3 object paths=./apis/... paths=../pipeline
//go:generate go run golang.org/x/tools/cmd/goimports@v0.52.0 -w ./apis/eddy/v1alpha1/zz_generated.deepcopy.go ./apis/devices/v1beta1/zz_generated.deepcopy.go ./apis/rules/v1/zz_generated.deepcopy.go ../pipeline/zz_generated.deepcopy.go
//go:generate go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.17.3 crd:crdVersions=v1,maxDescLen=400 paths=./apis/eddy/... output:crd:dir=../deploy/crds/eddy
//go:generate go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.17.3 crd:crdVersions=v1,maxDescLen=400 paths=./apis/devices/... paths=./apis/rules/... output:crd:dir=../deploy/crds/kubeedge
