package twin

import (
	"github.com/eddy-edge/eddy/pipeline/devices/kubeedge"
)

// Subscriptions are the topic filters the runner subscribes HandleMessage
// to (kubeedge.Subscriptions: twin/update and twin/get, state/update,
// membership/get and the mapper's data/update).
var Subscriptions = kubeedge.Subscriptions

// Version is a twin value's version: how many times the cloud and the edge
// have changed it (KubeEdge's TwinVersion).
type Version = kubeedge.TwinVersion
