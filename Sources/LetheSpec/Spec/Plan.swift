/// What `lethe plan` prints and `lethe run` executes: the resolved spec, its identity and hash,
/// the inputs it depends on and the stages that produce it.
public struct Plan: Sendable {
    public struct Input: Sendable, Hashable {
        public var role: String
        public var path: String
        public var sha256: String
    }

    public struct Stage: Sendable, Hashable {
        public enum Status: String, Sendable { case done, pending }
        public var name: String
        public var configHash: String
        public var spec: String?
        public var runDirectory: String
        public var status: Status
    }

    /// The spec with defaults filled and paths absolute.
    public var resolved: JSONValue
    /// `resolved` as typed values: what executors read.
    public var spec: RunSpec
    /// What the hash is taken over: the resolved spec less labels, paths replaced by content digests.
    public var identity: JSONValue
    public var configHash: String
    public var specPath: String
    public var inputs: [Input]
    public var stages: [Stage]
    public var dependencies: [Plan]
    public var warnings: [Diagnostic]
    /// The planner's estimate of the run's peak memory (it refuses specs far beyond the machine's).
    public var memory: MemoryEstimate? = nil

    public var kind: String { spec.kind.rawValue }
    public var outputDirectory: String { spec.output.dir }
    public var runDirectory: String { outputDirectory + "/" + configHash }

    public var json: JSONValue {
        var o = JSONObject()
        o["config_hash"] = .string(configHash)
        o["spec"] = .string(specPath)
        o["tool"] = .string("lethe " + LetheVersion.current)
        o["run_dir"] = .string(runDirectory)
        o["stages"] = .array(
            stages.map { s in
                var st = JSONObject()
                st["name"] = .string(s.name)
                st["config_hash"] = .string(s.configHash)
                if let spec = s.spec { st["spec"] = .string(spec) }
                st["run_dir"] = .string(s.runDirectory)
                st["status"] = .string(s.status.rawValue)
                return .object(st)
            })
        o["inputs"] = .array(
            inputs.map {
                .object(
                    JSONObject([("role", .string($0.role)), ("path", .string($0.path)), ("sha256", .string($0.sha256))])
                )
            })
        if let memory { o["memory_estimate_bytes"] = .integer(Int(min(memory.total, 9e18))) }
        o["resolved"] = resolved
        o["identity"] = identity
        return .object(o)
    }
}
