import Foundation
import LetheData
import LetheSpec

/// The third-party conformance suites, vendored in `Tests/Conformance/` with their licences (see its
/// README), so a fresh clone tests with nothing beside it. `LETHE_CONFORMANCE_DIR` points elsewhere
/// (a newer copy of the suites, say). Missing data fails the tests: a suite that silently skips
/// proves nothing. Large files are stored gzip-compressed (`NAME.gz`) and read back transparently.
enum Conformance {
    static let root: URL = {
        if let dir = ProcessInfo.processInfo.environment["LETHE_CONFORMANCE_DIR"] {
            return URL(fileURLWithPath: dir)
        }
        return Repo.root.appendingPathComponent("Tests/Conformance")
    }()

    static func url(_ relative: String) -> URL { root.appendingPathComponent(relative) }

    static func bytes(_ relative: String) throws -> [UInt8] {
        let plain = url(relative)
        if !FileManager.default.fileExists(atPath: plain.path),
            FileManager.default.fileExists(atPath: plain.path + ".gz")
        {
            return try Codecs.gunzip(
                Array(try Data(contentsOf: URL(fileURLWithPath: plain.path + ".gz"))), path: plain.path + ".gz")
        }
        return Array(try Data(contentsOf: plain))
    }

    static func json(_ relative: String) throws -> JSONValue {
        try JSONParser.parse(try bytes(relative), file: relative)
    }

    static func listing(_ relative: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: url(relative).path).sorted()
    }

    static func exists(_ relative: String) -> Bool {
        FileManager.default.fileExists(atPath: url(relative).path)
    }
}

/// The repository root, for tests that read `configs/` and `schemas/`.
enum Repo {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    /// The run specs in configs/ (file names, sorted): every YAML file but the sweep specs, which
    /// LetheSweepTests check.
    static let runSpecConfigs: [String] = {
        ((try? FileManager.default.contentsOfDirectory(atPath: path("configs"))) ?? []).filter {
            $0.hasSuffix(".yaml")
                && !((try? String(contentsOfFile: path("configs/" + $0), encoding: .utf8))?.contains("\nkind: sweep")
                    ?? false)
        }.sorted()
    }()
}
