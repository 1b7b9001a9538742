import Foundation
import LetheJSON
import LetheSpec
import LetheTensor

/// A finished run directory read back: its manifest checked against the files, its JSON files and
/// its checkpoint.
public struct RunRecord {
    public let path: String
    /// File name -> SHA-256 from the manifest (volatile files are not in it).
    public let manifest: [String: String]
    public let unhashed: [String]

    public struct Problem: Error, CustomStringConvertible {
        public var description: String
    }

    /// Reads `path`'s manifest; a missing or unreadable one is a `Problem`.
    public init(_ path: String) throws(Problem) {
        self.path = path
        guard let data = FileManager.default.contents(atPath: path + "/manifest.json") else {
            throw Problem(description: "\(path): no manifest.json; the run did not finish (or is not a run directory)")
        }
        let json: JSONValue
        do { json = try JSONParser.parse([UInt8](data), file: path + "/manifest.json") } catch {
            throw Problem(description: "\(path)/manifest.json is not valid JSON: \(error)")
        }
        guard let files = json["files"]?.objectValue else { throw Problem(description: "\(path)/manifest.json has no \"files\" object") }
        var m: [String: String] = [:]
        for (name, digest) in files {
            guard let d = digest.stringValue else { throw Problem(description: "\(path)/manifest.json: files.\(name) is not a digest string") }
            m[name] = d
        }
        manifest = m
        unhashed = json["unhashed"]?.arrayValue?.compactMap(\.stringValue) ?? []
    }

    /// Files whose content no longer matches the manifest, or that are missing. Empty: intact.
    public func verify() -> [String] {
        var problems: [String] = []
        for (name, digest) in manifest.sorted(by: { $0.key < $1.key }) {
            let file = path + "/" + name
            guard FileManager.default.fileExists(atPath: file) else { problems.append("\(name): missing"); continue }
            guard let actual = try? Digest.sha256(file: file) else { problems.append("\(name): unreadable"); continue }
            if actual != digest { problems.append("\(name): changed since the run finished (sha256 \(actual.prefix(12)) ≠ manifest \(digest.prefix(12)))") }
        }
        return problems
    }

    /// Fails with every problem when the run was tampered with or is incomplete.
    public func requireIntact() throws(Problem) {
        let problems = verify()
        if !problems.isEmpty {
            throw Problem(description: "\(path) does not match its manifest:\n" + problems.map { "  " + $0 }.joined(separator: "\n"))
        }
    }

    public var hash: String { (try? String(contentsOfFile: path + "/config_hash", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? URL(fileURLWithPath: path).lastPathComponent }

    public func json(_ name: String) throws -> JSONValue? { try RunStore.json(path, name) }

    /// The checkpoint's tensors as Float arrays by path.
    public func checkpoint(_ name: String = "checkpoint.safetensors") throws -> [(path: String, shape: [Int], values: [Float])]? {
        try Self.checkpoint(at: path + "/" + name)
    }

    public static func checkpoint(at file: String) throws -> [(path: String, shape: [Int], values: [Float])]? {
        guard let data = FileManager.default.contents(atPath: file) else { return nil }
        let parsed: Safetensors.File
        do { parsed = try Safetensors.read([UInt8](data)) } catch { throw RunError("\(file): \(error)") }
        return parsed.tensors.compactMap { t in (try? t.entry.values(as: Float.self)).map { (t.name, t.entry.shape, $0) } }
    }

    /// The run this one started from (its pretrain stage), if it is in the same runs folder.
    public var originalRun: String? {
        guard let identity = try? json("plan.json")?["identity"], let pretrain = identity["spec"]?["model"]?["pretrain"]?.stringValue,
              pretrain.hasPrefix("config:") else { return nil }
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path + "/" + pretrain.dropFirst("config:".count)
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
            return keys.flatMap { changes(x[$0], y[$0], at: pointer + "/" + $0.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")) }
        case (.array(let x)?, .array(let y)?) where x.count == y.count:
            return x.indices.flatMap { changes(x[$0], y[$0], at: pointer + "/\($0)") }
        default:
            return a == b ? [] : [Change(pointer: pointer.isEmpty ? "/" : pointer, before: a, after: b)]
        }
    }
}
