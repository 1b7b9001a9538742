import Foundation
import LetheFiles

/// What the planner must know of a data set before any image is decoded: its classes, its size,
/// its channel count and the files whose content is part of a run's identity.
public struct DatasetFacts: Sendable {
    public var classCount: Int?
    public var trainCount: Int?
    public var channels: Int?
    public var files: [String]
    public var root: String

    /// Debian's dataset-fashion-mnist layout.
    public static let fashionMNISTFiles = [
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
    ]

    public enum Problem: Error, Sendable { case missing(String) }

    public static func inspect(dataset: String, root: String) throws(Problem) -> DatasetFacts {
        switch dataset {
        case "fashion-mnist":
            let files = fashionMNISTFiles.map { root + "/" + $0 }
            for file in files {
                guard let problem = FileSystem.problem(file, directory: false) else { continue }
                if FileKind.of(file) == nil {
                    throw .missing(
                        "\(problem); install Debian's dataset-fashion-mnist (`make setup`) or point data.root at a copy"
                    )
                }
                throw .missing(problem)
            }
            return DatasetFacts(classCount: 10, trainCount: 60_000, channels: 1, files: files, root: root)
        case "image-folder":
            if let problem = FileSystem.problem(root, directory: true) { throw .missing(problem) }
            let trainRoot = FileSystem.exists(root + "/train", directory: true) ? root + "/train" : root
            let classes = ((try? FileManager.default.contentsOfDirectory(atPath: trainRoot)) ?? [])
                .filter { FileSystem.exists(trainRoot + "/" + $0, directory: true) && $0 != "test" }.sorted()
            guard !classes.isEmpty else { throw .missing("\(trainRoot) has no class sub-folders") }
            var files: [String] = []
            let walker = FileManager.default.enumerator(atPath: root)
            while let rel = walker?.nextObject() as? String {
                if rel.lowercased().hasSuffix(".png") { files.append(root + "/" + rel) }
            }
            files.sort()
            let trainFiles = files.filter { $0.hasPrefix(trainRoot + "/") && !$0.hasPrefix(root + "/test/") }
            return DatasetFacts(
                classCount: classes.count, trainCount: trainFiles.count,
                channels: files.first.flatMap(pngChannels), files: files, root: root)
        case "npy":
            if let problem = FileSystem.problem(root, directory: true) { throw .missing(problem) }
            for name in ["x_train.npy", "y_train.npy"] {
                guard let problem = FileSystem.problem(root + "/" + name, directory: false) else { continue }
                throw .missing(
                    "\(problem) (an npy data set is a folder with x_train.npy, y_train.npy and optionally x_test.npy, y_test.npy)"
                )
            }
            for name in ["x_test.npy", "y_test.npy"] where FileKind.of(root + "/" + name) != nil {
                if let problem = FileSystem.problem(root + "/" + name, directory: false) { throw .missing(problem) }
            }
            let files = ["x_train.npy", "y_train.npy", "x_test.npy", "y_test.npy"].map { root + "/" + $0 }.filter {
                FileSystem.exists($0, directory: false)
            }
            return DatasetFacts(classCount: nil, trainCount: nil, channels: nil, files: files, root: root)
        default:
            if let problem = FileSystem.problem(root, directory: false) { throw .missing(problem) }
            return DatasetFacts(classCount: nil, trainCount: nil, channels: nil, files: [root], root: root)
        }
    }

    /// Channels Lethe keeps from a PNG, read from its IHDR chunk: grey (and grey+alpha) 1, colour 3.
    static func pngChannels(_ path: String) -> Int? {
        guard let (fd, size) = try? RegularFile.open(path), size >= 26 else { return nil }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: 26)
        guard head.withUnsafeMutableBytes({ pread(fd, $0.baseAddress!, 26, 0) }) == 26 else { return nil }
        let colorType = head[25]
        return colorType == 0 || colorType == 4 ? 1 : 3
    }
}

/// A split's index file: one sample index per line; blank lines and `#` comments are allowed.
public enum IndexFile {
    public static func read(_ path: String) throws(SpecError) -> [Int] {
        let start = SourceMark(file: path, line: 1, column: 1)
        let data: [UInt8]
        do { data = try RegularFile.read(path, limit: maxSpecBytes) } catch {
            throw SpecError("cannot read the index file: \(error.message)", mark: start)
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw SpecError("index file is not UTF-8 text", mark: start)
        }
        var out: [Int] = []
        var problems: [Diagnostic] = []
        for (n, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = rawLine
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            let column =
                (line.firstIndex { !$0.isWhitespace }.map { line.distance(from: line.startIndex, to: $0) } ?? 0) + 1
            if let v = Int(trimmed), v >= 0 {
                out.append(v)
            } else if problems.count < 20 {
                problems.append(
                    Diagnostic(
                        "'\(trimmed)' is not a sample index (a non-negative integer)", at: .root,
                        mark: SourceMark(file: path, line: n + 1, column: column)))
            }
        }
        if !problems.isEmpty { throw SpecError(problems) }
        return out
    }
}
