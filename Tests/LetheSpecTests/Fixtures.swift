import Foundation
@testable import LetheSpec

/// Temporary folders with small, self-made inputs, so spec tests need no installed data.
struct TempDir {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "lethe-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func write(_ relative: String, _ text: String) throws {
        try write(relative, Array(text.utf8))
    }

    func write(_ relative: String, _ bytes: [UInt8]) throws {
        let url = URL(fileURLWithPath: path + "/" + relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: url)
    }

    /// An ImageFolder with `classes` class folders of two grey PNG headers each.
    func imageFolder(_ name: String = "data", classes: Int = 4, salt: UInt8 = 0) throws -> String {
        for c in 0..<classes {
            for i in 0..<2 {
                var png: [UInt8] = [
                    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52,
                ]
                png += [0, 0, 0, 8, 0, 0, 0, 8, 8, 0, 0, 0, 0, UInt8(c), UInt8(i), salt]
                try write("\(name)/class\(c)/\(i).png", png)
            }
        }
        return path + "/" + name
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

extension Planner {
    func plan(text: String, in dir: TempDir, name: String = "spec.yaml", overrides: [Override] = []) throws -> Plan {
        try dir.write(name, text)
        return try plan(specPath: dir.path + "/" + name, overrides: overrides)
    }
}
