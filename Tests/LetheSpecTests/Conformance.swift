import Foundation
import LetheSpec

/// The conformance data lives in `shared/conformance` beside the repository (or where
/// `LETHE_CONFORMANCE_DIR` says). Missing data fails the tests: a suite that silently skips proves nothing.
enum Conformance {
    static let root: URL = {
        if let dir = ProcessInfo.processInfo.environment["LETHE_CONFORMANCE_DIR"] {
            return URL(fileURLWithPath: dir)
        }
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for candidate in [repo.appendingPathComponent("../shared/conformance"), repo.appendingPathComponent("shared/conformance")] {
            if FileManager.default.fileExists(atPath: candidate.path) { return candidate.standardizedFileURL }
        }
        return repo.appendingPathComponent("../shared/conformance").standardizedFileURL
    }()

    static func url(_ relative: String) -> URL { root.appendingPathComponent(relative) }

    static func bytes(_ relative: String) throws -> [UInt8] {
        Array(try Data(contentsOf: url(relative)))
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
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }
}
