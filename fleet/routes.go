package fleet

// Subjects and headers of KubeEdge's router on the link (see
// pipeline/rules and docs/controller.md, "Rules"):
//
//   - down: the controller's router sends each rest request for a node to
//     eddy.down.<node>.rule.<namespace>.<name> with a reply subject under
//     eddy.reply.<node>.; the edge publishes the body on the rule's MQTT
//     topic or calls the rule's local service, and replies. A node may
//     subscribe only to its own down subjects and publish only under its
//     own reply prefix, so it can neither read another node's requests nor
//     answer them.
//   - up: records of topics that an eventbus->rest rule of the node
//     matches are forwarded by the outbox (the WAL: nothing is lost while
//     offline) to eddy.up.<node>.rules, with HeaderRules naming the rules.

// DownPrefix and ReplyPrefix are the subject prefixes of router requests
// to edges and of their replies.
const (
	DownPrefix  = "eddy.down"
	ReplyPrefix = "eddy.reply"
	// RulesSubject is the up subject (after eddy.up.<node>.) of records
	// that eventbus->rest rules forward.
	RulesSubject = "rules"
)

// Router headers.
const (
	// HeaderRules lists the namespace/name of every eventbus->rest rule a
	// forwarded record matched, comma separated.
	HeaderRules = "Eddy-Rules"
	// HeaderMethod, HeaderPath and HeaderQuery carry a servicebus
	// request's method, path below the rule's path, and raw query.
	HeaderMethod = "Eddy-Method"
	HeaderPath   = "Eddy-Path"
	HeaderQuery  = "Eddy-Query"
	// HeaderStatus is the HTTP status of a reply (200 for a publish;
	// the service's status for servicebus).
	HeaderStatus = "Eddy-Status"
	// HeaderError says why a request failed on the edge.
	HeaderError = "Eddy-Error"
	// HeaderContentType carries Content-Type both ways.
	HeaderContentType = "Content-Type"
)

// DownSubject is the subject of router requests for one rule on one node.
func DownSubject(node, namespace, name string) string {
	return DownPrefix + "." + node + ".rule." + namespace + "." + name
}

// DownFilter is what a node subscribes to for its router requests.
func DownFilter(node string) string { return DownPrefix + "." + node + ".rule.*.*" }

// NodeReplyPrefix is the prefix of reply subjects for requests to node.
func NodeReplyPrefix(node string) string { return ReplyPrefix + "." + node }
