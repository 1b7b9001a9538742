import Foundation
import LetheFiles
import LetheJSON
import LetheSpec

/// Re-executes a finished run from its recorded resolved spec into a scratch runs folder and checks
/// the result against the original's manifest: bitwise where that is promised (same machine, tool,
/// BLAS kernel and thread count, or strict numerics at any thread count), within a tolerance
/// otherwise. Stages it depends on (the pretrain run, the feature classifier) are reused from the
/// original's runs folder, not re-run: they are inputs, checked by their own manifests.
public struct Reproducer {
    public enum Verdict: String {
        case bitwise = "bitwise identical"
        case withinTolerance = "within tolerance"
        case differs = "differs"
    }

    public struct FileResult {
        public var name: String
        /// "identical", "differs", "missing in reproduction", "only in reproduction"
        public var status: String
        /// Largest relative difference of the numbers in it, where it holds numbers.
        public var maxRelative: Double?
        /// Derived files (report, plots, images) follow the numbers; they never decide the verdict.
        public var derived: Bool
    }

    public struct Outcome {
        public var original: String
        public var reproduction: String
        public var verdict: Verdict
        public var bitwiseExpected: Bool
        public var passed: Bool
        public var files: [FileResult]
        /// Likely causes, when something differs.
        public var causes: [String]
        /// Settings that differ from the original's (tool, BLAS, CPU, threads, commit), whatever the result.
        public var settingChanges: [String]
        public var tolerance: Double
    }

    /// Executes a plan's stages into its runs folder and returns the run directory (LetheUnlearn's
    /// `Executor.execute`, passed in so the run store does not depend on the executors).
    public typealias Execute = (_ plan: Plan, _ threads: Int, _ log: (String) -> Void) throws -> String

    public let original: RunRecord
    public let scratch: String
    public let threads: Int
    public let tolerance: Double
    let execute: Execute

    public init(
        original: RunRecord, scratch: String, threads: Int, tolerance: Double = 1e-4, execute: @escaping Execute
    ) {
        self.original = original
        self.scratch = scratch
        self.threads = threads
        self.tolerance = tolerance
        self.execute = execute
    }

    /// A scratch folder this process creates and therefore owns: `parent` itself when it does not exist
    /// yet, otherwise a new uniquely named folder inside it (an existing folder is never used as it
    /// is, so removing the scratch folder afterwards can never delete anything Lethe did not create).
    public static func makeScratch(under parent: String?, hash: String) throws -> String {
        let fm = FileManager.default
        if let parent, FileKind.of(parent, followLinks: false) == nil {
            do { try fm.createDirectory(atPath: parent, withIntermediateDirectories: true) } catch {
                throw RunError("\(parent): cannot create the scratch folder: \(FileSystem.reason(error))")
            }
            return parent
        }
        let base = parent ?? NSTemporaryDirectory()
        if let parent { try RegularFile.requireDirectory(parent) }
        var template =
            Array((base.hasSuffix("/") ? base : base + "/").utf8CString.dropLast())
            + Array("lethe-reproduce-\(hash.prefix(12))-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw RunError("\(base): cannot create a scratch folder in it: \(String(cString: strerror(errno)))")
        }
        return String(cString: made)
    }

    static let derivedSuffixes = [".html", ".svg", ".png"]
    static let provenanceFile = "provenance.json"

    public func run(log: @escaping (String) -> Void = { print($0) }) throws -> Outcome {
        try original.requireIntact()
        let runsRoot = URL(fileURLWithPath: original.path).deletingLastPathComponent().path
        let fm = FileManager.default
        let scratchRuns = scratch + "/runs"
        try fm.createDirectory(atPath: scratchRuns, withIntermediateDirectories: true)

        guard var resolved = try original.json("resolved.json"), let recordedPlan = try original.json("plan.json")
        else {
            throw RunError("\(original.path): resolved.json or plan.json is missing")
        }
        resolved = fixIndexFiles(resolved, plan: recordedPlan)
        // The pretrain dependency: its own resolved spec, and its finished run linked into the scratch folder.
        if let pretrain = recordedPlan["identity"]?["spec"]?["model"]?["pretrain"]?.stringValue,
            pretrain.hasPrefix("config:")
        {
            let hash = String(pretrain.dropFirst("config:".count))
            let depDir = runsRoot + "/" + hash
            let dep = try RunRecord(depDir)
            try dep.requireIntact()
            guard let depResolved = try dep.json("resolved.json"), let depPlan = try dep.json("plan.json") else {
                throw RunError("\(depDir): resolved.json is missing")
            }
            try write(fixIndexFiles(depResolved, plan: depPlan), to: scratch + "/pretrain.json")
            try link(depDir, into: scratchRuns)
            resolved = resolved.setting("/model/pretrain", .string("pretrain.json"))
        }
        resolved = resolved.setting("/output/dir", .string(scratchRuns))
        try write(resolved, to: scratch + "/spec.json")

        var plan: Plan
        do { plan = try Planner(workingDirectory: scratch).plan(specPath: scratch + "/spec.json") } catch {
            throw RunError("the recorded spec no longer plans:\n\(error)")
        }
        plan.specPath = original.path + "/spec.yaml"  // the copy in the run is the spec as written
        if let classifier = plan.stages.first(where: { $0.name == "classifier" }),
            RunDirectory.finished(runsRoot + "/" + classifier.configHash)
        {
            try link(runsRoot + "/" + classifier.configHash, into: scratchRuns)
        }
        var causes: [String] = []
        if plan.configHash != original.hash {
            let changed = JSONDiff.changes(recordedPlan["identity"], plan.identity).map(\.pointer)
            causes.append(
                "different inputs: the config hash is now \(plan.configHash.prefix(16)) (changed: \(changed.prefix(6).joined(separator: ", ")))"
            )
        }
        log("reproducing \(original.hash.prefix(16)) into \(scratchRuns)")
        let dir = try execute(plan, threads, log)
        let copy = try RunRecord(dir)

        let before = try original.json(Self.provenanceFile)
        let after = try copy.json(Self.provenanceFile)
        let strict = plan.spec.numerics.mode == .strict
        var sameSetting = true
        for (key, label) in [
            ("tool", "tool version"), ("blas", "BLAS kernel"), ("kernels", "Lethe's kernel instruction set"),
            ("small_products", "small products' library"), ("cpu", "CPU"),
            ("threads", "thread count"),
        ] {
            // Runs from before provenance named the small products' library ran them all on OpenBLAS.
            let then = before?[key] ?? (key == "small_products" && before != nil ? .string("openblas") : nil)
            if then != after?[key] {
                if key != "threads" || !strict { sameSetting = false }
                causes.append(
                    "\(label): \(JSONText.scalar(then ?? .null)) then, \(JSONText.scalar(after?[key] ?? .null)) now"
                )
            }
        }
        if before?["git"]?["commit"] != after?["git"]?["commit"] {
            causes.append(
                "git commit: \(before?["git"]?["commit"]?.stringValue?.prefix(12) ?? "?") then, \(after?["git"]?["commit"]?.stringValue?.prefix(12) ?? "?") now"
            )
        }
        if before?["git"]?["dirty"] == .bool(true) || after?["git"]?["dirty"] == .bool(true) {
            causes.append(
                "dirty tree: uncommitted changes \(before?["git"]?["dirty"] == .bool(true) ? "then" : "now"); the code that ran may differ from the commit"
            )
        }

        var files: [FileResult] = []
        for name in Set(original.manifest.keys).union(copy.manifest.keys).sorted() where name != Self.provenanceFile {
            let derived = Self.derivedSuffixes.contains { name.hasSuffix($0) }
            switch (original.manifest[name], copy.manifest[name]) {
            case let (x?, y?) where x == y: files.append(FileResult(name: name, status: "identical", derived: derived))
            case (_?, _?):
                files.append(
                    FileResult(
                        name: name, status: "differs", maxRelative: try relativeDifference(name, original.path, dir),
                        derived: derived))
            case (_?, nil): files.append(FileResult(name: name, status: "missing in reproduction", derived: derived))
            default: files.append(FileResult(name: name, status: "only in reproduction", derived: derived))
            }
        }
        let deciding = files.filter { !$0.derived }
        let verdict: Verdict
        if deciding.allSatisfy({ $0.status == "identical" }) {
            verdict = .bitwise
        } else if deciding.allSatisfy({ $0.status == "identical" || ($0.maxRelative.map { $0 <= tolerance } ?? false) })
        {
            verdict = .withinTolerance
        } else {
            verdict = .differs
        }
        // Settings that differ are causes only when something differs.
        let settingChanges = causes
        if verdict == .bitwise { causes.removeAll() }
        let bitwiseExpected = sameSetting && plan.configHash == original.hash
        let passed = bitwiseExpected ? verdict == .bitwise : verdict != .differs
        return Outcome(
            original: original.path, reproduction: dir, verdict: verdict, bitwiseExpected: bitwiseExpected,
            passed: passed,
            files: files, causes: causes, settingChanges: settingChanges, tolerance: tolerance)
    }

    /// Index files are recorded relative to the spec; the plan's inputs hold their resolved paths.
    func fixIndexFiles(_ resolved: JSONValue, plan: JSONValue) -> JSONValue {
        var out = resolved.removing("/output")
        for input in plan["inputs"]?.arrayValue ?? [] {
            guard let role = input["role"]?.stringValue, role.hasPrefix("data."), role.hasSuffix(".index_file"),
                let path = input["path"]?.stringValue
            else { continue }
            let split = role.dropFirst("data.".count).dropLast(".index_file".count)
            out = out.setting("/data/\(split)/index_file", .string(path))
        }
        return out
    }

    func write(_ json: JSONValue, to path: String) throws {
        try (JSONText.pretty(json) + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    }

    func link(_ dir: String, into folder: String) throws {
        let target = folder + "/" + URL(fileURLWithPath: dir).lastPathComponent
        if !FileManager.default.fileExists(atPath: target) {
            try FileManager.default.createSymbolicLink(atPath: target, withDestinationPath: dir)
        }
    }

    /// The largest relative difference between the numbers of two versions of a file (JSON, JSON
    /// Lines, safetensors); nil when the file holds no comparable numbers or its structure differs.
    func relativeDifference(_ name: String, _ a: String, _ b: String) throws -> Double? {
        func rel(_ x: [Double], _ y: [Double]) -> Double? {
            guard x.count == y.count else { return nil }
            var worst = 0.0
            for (u, v) in zip(x, y) where u != v {
                if !u.isFinite || !v.isFinite { return .infinity }
                worst = max(worst, abs(u - v) / max(abs(u), abs(v), 1e-12))
            }
            return worst
        }
        if name.hasSuffix(".safetensors") {
            guard let x = try RunRecord.checkpoint(at: a + "/" + name),
                let y = try RunRecord.checkpoint(at: b + "/" + name),
                x.map(\.path) == y.map(\.path)
            else { return nil }
            // Relative to each tensor's scale: an element near zero does not make the whole tensor "differ".
            var worst = 0.0
            for (s, t) in zip(x, y) {
                guard s.shape == t.shape else { return nil }
                let scale = max(s.values.map { abs(Double($0)) }.max() ?? 0, 1e-12)
                for (u, v) in zip(s.values, t.values) where u != v {
                    worst = max(worst, abs(Double(u) - Double(v)) / scale)
                }
            }
            return worst
        }
        guard name.hasSuffix(".json") || name.hasSuffix(".jsonl") else { return nil }
        guard let da = FileManager.default.contents(atPath: a + "/" + name),
            let db = FileManager.default.contents(atPath: b + "/" + name),
            let ja = try? JSONParser.parseStream([UInt8](da)), let jb = try? JSONParser.parseStream([UInt8](db))
        else { return nil }
        func numbers(_ v: JSONValue, _ out: inout [Double], _ skeleton: inout [String]) {
            switch v {
            case .object(let o):
                for (k, x) in o {
                    skeleton.append(k)
                    numbers(x, &out, &skeleton)
                }
            case .array(let items):
                skeleton.append("[\(items.count)]")
                for x in items { numbers(x, &out, &skeleton) }
            default:
                if let d = v.doubleValue { out.append(d) } else { skeleton.append(JSONText.scalar(v)) }
            }
        }
        var na: [Double] = []
        var nb: [Double] = []
        var sa: [String] = []
        var sb: [String] = []
        for v in ja { numbers(v, &na, &sa) }
        for v in jb { numbers(v, &nb, &sb) }
        return sa == sb ? rel(na, nb) : nil
    }
}
