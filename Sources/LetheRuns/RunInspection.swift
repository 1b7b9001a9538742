import Foundation
import LetheFiles
import LetheJSON
import LetheSpec
import LetheTensor

/// A finished run directory read back: its manifest checked against the files, its JSON files and
/// its checkpoint.
///
/// Everything a manifest names is confined to the run directory: names with `..`, absolute names and
/// symbolic links are refused, and only regular files are read (a FIFO or a device never hangs a check).
public struct RunRecord {
    public let path: String
    /// File name -> SHA-256 from the manifest (volatile files are not in it).
    public let manifest: [String: String]
    public let unhashed: [String]

    public struct Problem: Error, CustomStringConvertible {
        public var description: String
    }

    /// Largest manifest read (a real one is a few KiB).
    static let manifestLimit = 16 << 20

    /// Reads `path`'s manifest; a missing or unreadable one is a `Problem`.
    public init(_ path: String) throws(Problem) {
        self.path = path
        let data: [UInt8]
        do { data = try RegularFile.read(path + "/manifest.json", limit: Self.manifestLimit, followLinks: false) } catch
        {
            if FileKind.of(path + "/manifest.json", followLinks: false) == nil {
                throw Problem(
                    description: "\(path): no manifest.json; the run did not finish (or is not a run directory)")
            }
            throw Problem(description: "\(error)")
        }
        let json: JSONValue
        do { json = try JSONParser.parse(data, file: path + "/manifest.json") } catch {
            throw Problem(description: "\(path)/manifest.json is not valid JSON: \(error)")
        }
        guard let files = json["files"]?.objectValue else {
            throw Problem(description: "\(path)/manifest.json has no \"files\" object")
        }
        var m: [String: String] = [:]
        for (name, digest) in files {
            guard let d = digest.stringValue else {
                throw Problem(description: "\(path)/manifest.json: files.\(name) is not a digest string")
            }
            m[name] = d
        }
        manifest = m
        unhashed = json["unhashed"]?.arrayValue?.compactMap(\.stringValue) ?? []
    }

    /// The files in `dir`, relative to it, sorted; symbolic links and anything that is neither a file
    /// nor a directory are errors (a run directory holds only what Lethe wrote).
    static func files(in dir: String) throws(FileError) -> [String] {
        var out: [String] = []
        func walk(_ relative: String) throws(FileError) {
            let full = relative.isEmpty ? dir : dir + "/" + relative
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: full) } catch {
                throw FileError("cannot list the folder: \(FileSystem.reason(error))", path: full)
            }
            for name in names.sorted() {
                let rel = relative.isEmpty ? name : relative + "/" + name
                switch FileKind.of(dir + "/" + rel, followLinks: false) {
                case .regular?: out.append(rel)
                case .directory?: try walk(rel)
                case let kind?:
                    throw FileError(
                        "is \(kind.phrase); a run directory holds only regular files", path: dir + "/" + rel)
                case nil: continue
                }
            }
        }
        try walk("")
        return out
    }

    /// Every way the directory differs from what its manifest promises: files changed, missing, not
    /// regular, outside the directory or not listed; the directory's name or `config_hash` not the
    /// hash of the identity recorded with it. Empty: intact.
    public func verify() -> [String] {
        var problems: [String] = []
        for (name, digest) in manifest.sorted(by: { $0.key < $1.key }) {
            let file: String
            do { file = try Confined.path(name, in: path) } catch {
                problems.append("\(name): \(error.message)")
                continue
            }
            do {
                let actual = try Digest.sha256(file: file, followLinks: false)
                if actual != digest {
                    problems.append(
                        "\(name): changed since the run finished (sha256 \(actual.prefix(12)) ≠ manifest \(digest.prefix(12)))"
                    )
                }
            } catch let error as FileError {
                problems.append(
                    FileKind.of(file, followLinks: false) == nil ? "\(name): missing" : "\(name): \(error.message)")
            } catch {
                problems.append("\(name): unreadable (\(error))")
            }
        }
        for name in unhashed where !RunDirectory.volatileFiles.contains(name) {
            problems.append(
                "\(name): listed as unhashed, but only \(RunDirectory.volatileFiles.sorted().joined(separator: ", ")) may be"
            )
        }
        do {
            let listed = Set(manifest.keys).union(unhashed).union(["manifest.json"])
            for name in try Self.files(in: path) where !listed.contains(name) {
                problems.append("\(name): not in the manifest (added after the run finished)")
            }
        } catch {
            problems.append(error.description)
        }
        problems += identityProblems()
        return problems
    }

    /// The files every finished run holds, by stage.
    static func requiredFiles(stage: String) -> [String] {
        switch stage {
        case "classifier":
            return ["checkpoint.safetensors", "config_hash", "eval.json", "identity.json", "provenance.json"]
        case "pretrain", "unlearn":
            return [
                "checkpoint.safetensors", "config_hash", "eval.json", "plan.json", "provenance.json", "resolved.json",
                "splits.json",
            ]
        default: return ["config_hash", "eval.json", "plan.json", "provenance.json", "resolved.json", "splits.json"]
        }
    }

    /// The directory's name, its `config_hash` file and the SHA-256 of the canonical identity it
    /// records (`plan.json`'s `identity`, or a classifier's `identity.json`) must all agree, and the
    /// files its stage always writes must be in the manifest.
    func identityProblems() -> [String] {
        var problems: [String] = []
        let name = URL(fileURLWithPath: path).lastPathComponent
        let identity: JSONValue?
        let stage: String
        if manifest["identity.json"] != nil {
            identity = try? json("identity.json")
            stage = "classifier"
        } else {
            let plan = try? json("plan.json")
            identity = plan?["identity"]
            stage = identity?["spec"]?["kind"]?.stringValue ?? "?"
        }
        for file in Self.requiredFiles(stage: stage) where manifest[file] == nil {
            problems.append("\(file): missing from the manifest (a finished \(stage) run always has it)")
        }
        let recorded = (try? RegularFile.read(path + "/config_hash", limit: 4096, followLinks: false))
            .map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) }
        if let recorded, recorded != name {
            problems.append(
                "config_hash: says \(recorded.prefix(16)), but the directory is named \(name.prefix(16)) (renamed?)")
        }
        if let identity, let text = try? CanonicalJSON.string(identity) {
            let actual = Digest.sha256(text)
            if actual != name {
                problems.append(
                    "the identity recorded in the run hashes to \(actual.prefix(16)), not to the directory's name \(name.prefix(16))"
                )
            }
        } else if !problems.contains(where: { $0.hasPrefix("plan.json") || $0.hasPrefix("identity.json") }) {
            problems.append(
                "\(stage == "classifier" ? "identity.json" : "plan.json"): no identity to check the directory's name against"
            )
        }
        return problems
    }

    /// Fails with every problem when the run was tampered with or is incomplete.
    public func requireIntact() throws(Problem) {
        let problems = verify()
        if !problems.isEmpty {
            throw Problem(
                description: "\(path) does not match its manifest:\n"
                    + problems.map { "  " + $0 }.joined(separator: "\n"))
        }
    }

    /// The run's config hash: its directory's name (which `verify()` checks against `config_hash` and
    /// the recorded identity).
    public var hash: String { URL(fileURLWithPath: path).lastPathComponent }

    public func json(_ name: String) throws -> JSONValue? { try RunStore.json(path, name) }

    /// The checkpoint's tensors as Float arrays by path.
    public func checkpoint(_ name: String = "checkpoint.safetensors") throws -> [(
        path: String, shape: [Int], values: [Float]
    )]? {
        try Self.checkpoint(at: path + "/" + name)
    }

    public static func checkpoint(at file: String) throws -> [(path: String, shape: [Int], values: [Float])]? {
        guard FileKind.of(file, followLinks: false) != nil else { return nil }
        let parsed: Safetensors.File
        do { parsed = try Safetensors.read(try RegularFile.read(file, followLinks: false)) } catch {
            throw RunError("\(file): \(error)")
        }
        return parsed.tensors.compactMap { t in
            (try? t.entry.values(as: Float.self)).map { (t.name, t.entry.shape, $0) }
        }
    }

    /// The run this one started from (its pretrain stage), if it is in the same runs folder.
    public var originalRun: String? {
        guard let identity = try? json("plan.json")?["identity"],
            let pretrain = identity["spec"]?["model"]?["pretrain"]?.stringValue,
            pretrain.hasPrefix("config:")
        else { return nil }
        let dir =
            URL(fileURLWithPath: path).deletingLastPathComponent().path + "/" + pretrain.dropFirst("config:".count)
        return RunDirectory.finished(dir) ? dir : nil
    }
}

/// Differences between two JSON values, by JSON pointer, leaves only.
public enum JSONDiff {
    public struct Change: Equatable {
        public var pointer: String
        public var before: JSONValue?
        public var after: JSONValue?
    }

    public static func changes(_ a: JSONValue?, _ b: JSONValue?, at pointer: String = "") -> [Change] {
        switch (a, b) {
        case (.object(let x)?, .object(let y)?):
            let keys = x.keys + y.keys.filter { x[$0] == nil }
            return keys.flatMap {
                changes(
                    x[$0], y[$0],
                    at: pointer + "/"
                        + $0.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1"))
            }
        case (.array(let x)?, .array(let y)?) where x.count == y.count:
            return x.indices.flatMap { changes(x[$0], y[$0], at: pointer + "/\($0)") }
        default:
            return a == b ? [] : [Change(pointer: pointer.isEmpty ? "/" : pointer, before: a, after: b)]
        }
    }
}
