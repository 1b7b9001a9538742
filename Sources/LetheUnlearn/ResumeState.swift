import Foundation
import LetheFiles
import LetheJSON
import LetheModels
import LetheRuns
import LetheSpec
import LetheTensor

/// The complete state of a training loop after some step, saved in the staging folder's `resume/`
/// so a run that was killed, preempted or stopped resumes there and ends bit for bit where an
/// uninterrupted run ends:
///
/// - `resume/state-<step>.safetensors`: the trained module's parameters (`model.<path>`) and the
///   optimiser's buffers (`optimizer.<index>.<buffer>`);
/// - `resume/state.json`: the step, the optimiser's step count, the metrics and timing lines so far,
///   the stage's own state (its random streams, batch orders, probes: `stage`), the model family's
///   training state (`family`), the tensors file's SHA-256, and the build that wrote it.
///
/// `state.json` is written after its tensors file and names it, and older tensors files are removed
/// only after that, so a kill at any moment leaves a consistent pair (or none).
struct ResumeState {
    static let formatVersion = 1
    static let stateFile = "state.json"

    var step: Int
    var optimizerSteps: Int
    var curve: [String]
    var timing: [String]
    var stage: JSONValue
    var family: [String: [Int]]
    var tensors: Safetensors.File
    /// Tool version, commit and numerics mode of the build that wrote the state, and its thread count.
    var build: Build

    struct Build: Equatable {
        var tool: String
        var commit: String
        var mode: String
        var threads: Int

        /// The running build.
        static func current(threads: Int, mode: Numerics.Mode) -> Build {
            let provenance = RunFiles.provenance(threads: threads, mode: mode)
            let git = provenance["git"]
            let commit =
                (git?["commit"]?.stringValue ?? "unknown") + (git?["dirty"]?.boolValue == true ? "+dirty" : "")
            return Build(
                tool: provenance["tool"]?.stringValue ?? "lethe", commit: commit, mode: mode.rawValue, threads: threads)
        }

        var json: JSONValue {
            .object(
                JSONObject([
                    ("tool", .string(tool)), ("commit", .string(commit)), ("numerics_mode", .string(mode)),
                    ("threads", .integer(threads)),
                ]))
        }
    }

    struct Unusable: Error, CustomStringConvertible {
        var description: String
    }

    static func folder(_ dir: RunDirectory) -> String { dir.path(RunDirectory.resumeFolder) }

    /// Writes the state into `dir`'s resume folder (see the type's comment for the order).
    func save(into dir: RunDirectory) throws {
        let name = "state-\(step).safetensors"
        let bytes = Safetensors.write(tensors)
        try dir.write(RunDirectory.resumeFolder + "/" + name, bytes: bytes)
        let record = JSONObject([
            ("format", .integer(Self.formatVersion)), ("step", .integer(step)),
            ("optimizer_steps", .integer(optimizerSteps)), ("tensors", .string(name)),
            ("tensors_sha256", .string(Digest.sha256(bytes))), ("build", build.json),
            ("curve", .array(curve.map(JSONValue.string))), ("timing", .array(timing.map(JSONValue.string))),
            ("stage", stage),
            (
                "family",
                .object(
                    JSONObject(
                        family.sorted { $0.key < $1.key }.map { ($0.key, .array($0.value.map(JSONValue.integer))) }))
            ),
        ])
        try dir.write(RunDirectory.resumeFolder + "/" + Self.stateFile, json: .object(record))
        let folder = Self.folder(dir)
        for old in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        where old.hasPrefix("state-") && old.hasSuffix(".safetensors") && old != name {
            try? FileManager.default.removeItem(atPath: folder + "/" + old)
        }
    }

    /// The state saved in `dir`'s resume folder; nil when there is none, `Unusable` when it cannot be
    /// read or does not hang together.
    static func load(from dir: RunDirectory) throws(Unusable) -> ResumeState? {
        let folder = folder(dir)
        let path = folder + "/" + stateFile
        guard FileKind.of(path, followLinks: false) != nil else { return nil }
        do {
            let json = try JSONParser.parse(try RegularFile.read(path, limit: 1 << 30, followLinks: false), file: path)
            guard json["format"]?.intValue == formatVersion, let step = json["step"]?.intValue,
                let optimizerSteps = json["optimizer_steps"]?.intValue, let name = json["tensors"]?.stringValue,
                !name.contains("/"), let digest = json["tensors_sha256"]?.stringValue,
                let curve = json["curve"]?.arrayValue?.compactMap(\.stringValue),
                let timing = json["timing"]?.arrayValue?.compactMap(\.stringValue), let stage = json["stage"],
                let family = json["family"]?.objectValue, let build = json["build"]
            else { throw Unusable(description: "\(path): not a resume state this version of Lethe writes") }
            let bytes = try RegularFile.read(folder + "/" + name, limit: 1 << 34, followLinks: false)
            guard Digest.sha256(bytes) == digest else {
                throw Unusable(description: "\(folder)/\(name) does not match the SHA-256 that \(path) records")
            }
            var families: [String: [Int]] = [:]
            for key in family.keys { families[key] = family[key]?.arrayValue?.compactMap(\.intValue) ?? [] }
            return ResumeState(
                step: step, optimizerSteps: optimizerSteps, curve: curve, timing: timing, stage: stage,
                family: families, tensors: try Safetensors.read(bytes),
                build: Build(
                    tool: build["tool"]?.stringValue ?? "", commit: build["commit"]?.stringValue ?? "",
                    mode: build["numerics_mode"]?.stringValue ?? "", threads: build["threads"]?.intValue ?? 0))
        } catch let error as Unusable {
            throw error
        } catch {
            throw Unusable(description: "\(path): \(error)")
        }
    }

    /// The tensors whose names start with `prefix`, the prefix removed.
    func tensors(under prefix: String) -> Safetensors.File {
        Safetensors.File(
            tensors: tensors.tensors.filter { $0.name.hasPrefix(prefix) }.map {
                (String($0.name.dropFirst(prefix.count)), $0.entry)
            })
    }
}

/// A stage's own state between steps (its random streams and batch orders, a probe curve), kept by the
/// training loop and handed to each step: Codable, so it is saved with the rest of the resume state.
protocol StageStreams: Codable {}

/// Stages with nothing of their own to carry between steps.
struct NoStreams: StageStreams {}

extension StageStreams {
    var resumeJSON: JSONValue {
        get throws {
            let data = try JSONEncoder().encode(self)
            return try JSONParser.parse(Array(data), file: "stage state")
        }
    }

    static func decoded(from json: JSONValue) throws -> Self {
        try JSONDecoder().decode(Self.self, from: Data(JSONText.scalar(json).utf8))
    }
}

/// A Double saved by its bit pattern (hex), so it comes back exactly.
struct ExactDouble: Codable, Equatable {
    var value: Double

    init(_ value: Double) { self.value = value }

    init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let bits = UInt64(text, radix: 16) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not hex bits"))
        }
        value = Double(bitPattern: bits)
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(String(value.bitPattern, radix: 16))
    }
}

/// The test hook of the resume tests: `LETHE_TEST_STOP_AT_STEP=K:KILL` (or `K:TERM`) makes a
/// training loop send itself that signal once step K is done, as a `kill -9` or a preemption at that
/// moment would. Read once; unset in normal use.
enum TestStopHook {
    static let planned: (step: Int, signal: Int32)? = {
        guard let text = ProcessInfo.processInfo.environment["LETHE_TEST_STOP_AT_STEP"] else { return nil }
        let parts = text.split(separator: ":")
        guard parts.count == 2, let step = Int(parts[0]) else { return nil }
        switch parts[1] {
        case "KILL": return (step, SIGKILL)
        case "TERM": return (step, SIGTERM)
        case "INT": return (step, SIGINT)
        default: return nil
        }
    }()

    static func fire(after step: Int) {
        if let planned, planned.step == step { kill(getpid(), planned.signal) }
    }
}
