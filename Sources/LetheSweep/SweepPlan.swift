import Foundation
import LetheFiles
import LetheRuns
import LetheSpec

/// One run of a sweep: a base spec with the member's settings applied (as `--set` would), planned.
public struct SweepMember: Sendable {
    public var index: Int
    /// The base spec (absolute path).
    public var base: String
    /// The settings that vary across the sweep (grid and zip paths, and `base` when there are several
    /// base specs), in column order, with their values.
    public var settings: [(path: String, value: JSONValue)]
    /// Every override the member applies to its base (set, then grid, then zip).
    public var overrides: [Override]
    public var plan: Plan

    /// The member's value of a varied setting, as tables show it ("" when it has none).
    public func setting(_ path: String) -> String {
        settings.first { $0.path == path }.map { SweepPlan.text($0.value) } ?? ""
    }

    /// `unlearn.alpha=0.05 seed=1`.
    public var label: String {
        settings.isEmpty
            ? "base \(URL(fileURLWithPath: base).lastPathComponent)"
            : settings.map { "\($0.path)=\(SweepPlan.text($0.value))" }.joined(separator: " ")
    }

    /// The stage hashes the member's own run needs finished first.
    public var needs: [String] = []

    /// `lethe run` arguments that build this member (and nothing it depends on that is missing: those
    /// are stages of their own, built first).
    public var runArguments: [String] {
        ["run", base] + overrides.flatMap { ["--set", $0.argument] }
            + ["--set", SweepPlan.outputArgument(plan.outputDirectory), "--expect-hash", plan.configHash]
    }

    public var finished: Bool { RunDirectory.finished(plan.runDirectory) }
}

/// A stage that members depend on (an original model's pretraining, the feature classifier), built once
/// however many members need it, before them.
public struct SweepStage: Sendable {
    public enum Kind: String, Sendable { case pretrain, classifier }
    public var kind: Kind
    public var configHash: String
    public var runDirectory: String
    /// `lethe run` arguments that build it.
    public var arguments: [String]
    /// Hashes of the stages it needs finished first.
    public var needs: [String]

    public var finished: Bool { RunDirectory.finished(runDirectory) }
    public var name: String { "\(kind.rawValue)-\(configHash.prefix(12))" }
}

/// A sweep spec planned: its members (each an ordinary plan), the shared stages in dependency order,
/// and the sweep's hash (over its members' config hashes and settings), which names its results
/// folder `<output>/sweeps/<hash>/`.
public struct SweepPlan: Sendable {
    public var path: String
    public var name: String
    public var hash: String
    public var directory: String
    public var members: [SweepMember]
    public var stages: [SweepStage]
    /// The column names of the varied settings.
    public var varied: [String]
    public var slurm: SlurmSettings

    /// `output.dir=<dir>` as a `--set` argument (quoted as JSON, so any path reads back as itself).
    static func outputArgument(_ dir: String) -> String {
        Override(path: ["output", "dir"], value: .string(dir), origin: nil).argument
    }

    /// A value as `--set` and the tables show it (canonical JSON; strings without quotes).
    public static func text(_ v: JSONValue) -> String {
        if case .string(let s) = v { return s }
        return (try? CanonicalJSON.string(v)) ?? "null"
    }

    /// What `members.json` records: enough to collect the results without the sweep file.
    public var record: SweepRecord {
        let states = memberStates()
        return SweepRecord(
            sweep: path, name: name, hash: hash, varied: varied,
            members: zip(members, states).map { m, state in
                SweepRecord.Member(
                    index: m.index, base: m.base, kind: m.plan.kind, settings: m.settings,
                    metrics: m.plan.spec.kind == .pretrain ? [] : m.plan.spec.evaluate.metrics.map(\.rawValue),
                    configHash: m.plan.configHash, runDirectory: m.plan.runDirectory, state: state)
            },
            stages: stages.map { ($0.kind.rawValue, $0.configHash, $0.runDirectory) })
    }
}

/// A sweep's member list as `members.json` holds it (written by `lethe sweep`, read back by
/// `lethe sweep collect DIR`, which needs neither the sweep file nor its base specs).
public struct SweepRecord: Sendable {
    public struct Member: Sendable {
        public var index: Int
        public var base: String
        public var kind: String
        public var settings: [(path: String, value: JSONValue)]
        /// The metrics the member's evaluation computes (unlearn and evaluate runs).
        public var metrics: [String]
        public var configHash: String
        public var runDirectory: String
        /// The state when the record was made; nil: read it from the run directory.
        public var state: String?
    }

    public var sweep: String
    public var name: String
    public var hash: String
    public var varied: [String]
    public var members: [Member]
    public var stages: [(kind: String, configHash: String, runDirectory: String)]

    /// A member's state from its run directory alone: finished, running, interrupted or pending.
    public static func state(of runDirectory: String) -> String {
        if RunDirectory.finished(runDirectory) { return "finished" }
        let saved = RunDirectory.resumableStep(runDirectory + ".partial")
        if StageLock.isBusy(runDirectory) { return "running" + (saved.map { " (state saved at step \($0))" } ?? "") }
        if let saved { return "interrupted (resumes from step \(saved))" }
        return "pending"
    }

    public var json: JSONValue {
        .object(
            JSONObject([
                ("sweep", .string(sweep)), ("name", .string(name)), ("sweep_hash", .string(hash)),
                ("tool", .string("lethe " + LetheVersion.current)),
                ("varied", .array(varied.map(JSONValue.string))),
                (
                    "members",
                    .array(
                        members.map { m in
                            .object(
                                JSONObject([
                                    ("index", .integer(m.index)), ("base", .string(m.base)), ("kind", .string(m.kind)),
                                    ("settings", .object(JSONObject(m.settings.map { ($0.path, $0.value) }))),
                                    ("metrics", .array(m.metrics.map(JSONValue.string))),
                                    ("config_hash", .string(m.configHash)), ("run_dir", .string(m.runDirectory)),
                                ]))
                        })
                ),
                (
                    "stages",
                    .array(
                        stages.map { s in
                            .object(
                                JSONObject([
                                    ("kind", .string(s.kind)), ("config_hash", .string(s.configHash)),
                                    ("run_dir", .string(s.runDirectory)),
                                ]))
                        })
                ),
            ]))
    }

    public struct Unreadable: Error, CustomStringConvertible {
        public var description: String
    }

    /// The record in a sweep folder's members.json.
    public static func read(folder: String) throws(Unreadable) -> SweepRecord {
        let path = folder + "/members.json"
        let json: JSONValue
        do {
            guard let parsed = try RunStore.json(folder, "members.json") else {
                throw Unreadable(description: "\(path): no such file; \(folder) is not a sweep folder")
            }
            json = parsed
        } catch let error as Unreadable {
            throw error
        } catch {
            throw Unreadable(description: "\(error)")
        }
        guard let members = json["members"]?.arrayValue, let hash = json["sweep_hash"]?.stringValue else {
            throw Unreadable(description: "\(path): not a sweep's member list")
        }
        var out: [Member] = []
        for m in members {
            guard let index = m["index"]?.intValue, let configHash = m["config_hash"]?.stringValue,
                let runDirectory = m["run_dir"]?.stringValue, let settings = m["settings"]?.objectValue
            else {
                throw Unreadable(description: "\(path): a member lacks its index, config_hash, run_dir or settings")
            }
            out.append(
                Member(
                    index: index, base: m["base"]?.stringValue ?? "", kind: m["kind"]?.stringValue ?? "unlearn",
                    settings: settings.keys.map { ($0, settings[$0]!) },
                    metrics: m["metrics"]?.arrayValue?.compactMap(\.stringValue) ?? [], configHash: configHash,
                    runDirectory: runDirectory, state: nil))
        }
        return SweepRecord(
            sweep: json["sweep"]?.stringValue ?? "", name: json["name"]?.stringValue ?? "sweep", hash: hash,
            varied: json["varied"]?.arrayValue?.compactMap(\.stringValue) ?? [], members: out,
            stages: (json["stages"]?.arrayValue ?? []).map {
                ($0["kind"]?.stringValue ?? "", $0["config_hash"]?.stringValue ?? "", $0["run_dir"]?.stringValue ?? "")
            })
    }
}

/// Slurm resources of a sweep (the spec's `slurm` section with the schema's defaults filled in, typed;
/// command-line options override them).
public struct SlurmSettings: Decodable, Sendable, Equatable {
    public var partition: String?
    public var time: String
    public var cpusPerTask: Int
    public var mem: String
    public var maxParallel: Int?
    public var account: String?
    public var qos: String?

    /// The section as the planner resolved it (every default present).
    static func decode(_ section: JSONValue) throws -> SlurmSettings {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(SlurmSettings.self, from: Data(try CanonicalJSON.string(section).utf8))
    }
}

/// Reads, validates and expands sweep specs.
public struct SweepPlanner: Sendable {
    public var workingDirectory: String
    /// The most members one sweep may have.
    public static let memberLimit = 10_000

    public init(workingDirectory: String = FileManager.default.currentDirectoryPath) {
        self.workingDirectory = workingDirectory
    }

    /// Whether the spec file at `path` is a sweep (its `kind`), without planning it.
    public static func isSweep(_ path: String) -> Bool {
        guard let bytes = try? RegularFile.read(path, limit: maxSpecBytes),
            let doc = try? SpecDocument.parse(bytes, path: path)
        else { return false }
        return doc.json["kind"]?.stringValue == "sweep"
    }

    public func plan(path: String) throws(SpecError) -> SweepPlan {
        let doc = try SpecDocument.load(path: path)
        let problems = doc.schemaDiagnostics(root: RunSpecSchema.sweepURI)
        guard problems.isEmpty else { throw SpecError(problems) }
        let spec = RunSpecSchema.embedded.fillingDefaults(doc.json, root: RunSpecSchema.sweepURI)
        let folder = URL(fileURLWithPath: doc.path).deletingLastPathComponent().standardizedFileURL.path
        var diagnostics: [Diagnostic] = []

        // Base specs: files that exist and are run specs.
        let baseValues: [(String, JSONPointer)]
        if let list = spec["base"]?.arrayValue {
            baseValues = list.enumerated().map { ($1.stringValue ?? "", JSONPointer(["base", String($0)])) }
        } else {
            baseValues = [(spec["base"]?.stringValue ?? "", JSONPointer(["base"]))]
        }
        var bases: [String] = []
        for (text, pointer) in baseValues {
            let resolved = FileSystem.resolve(text, relativeTo: folder)
            if let problem = FileSystem.problem(resolved, directory: false) {
                diagnostics.append(doc.diagnostic("base spec " + problem, at: pointer))
            } else if Self.isSweep(resolved) {
                diagnostics.append(doc.diagnostic("\(text) is itself a sweep; a base is a run spec", at: pointer))
            } else {
                bases.append(resolved)
            }
        }

        // Settings: set (every member), grid (product), zip (paired); no path in two places.
        func entries(_ section: String) -> [(path: String, values: [(JSONValue, SourceMark?)])] {
            guard let object = spec[section]?.objectValue else { return [] }
            return object.keys.map { key in
                let values = object[key]?.arrayValue ?? []
                return (
                    key,
                    values.enumerated().map { i, v in (v, doc.mark(JSONPointer([section, key, String(i)]))) }
                )
            }
        }
        let grid = entries("grid")
        let zip = entries("zip")
        var fixed: [(path: String, value: JSONValue, mark: SourceMark?)] = []
        if let object = spec["set"]?.objectValue {
            for key in object.keys {
                fixed.append((key, object[key]!, doc.mark(JSONPointer(["set", key]))))
            }
        }
        var seen: [String: String] = [:]
        for (section, keys) in [("set", fixed.map(\.path)), ("grid", grid.map(\.path)), ("zip", zip.map(\.path))] {
            for key in keys {
                if let first = seen[key] {
                    diagnostics.append(
                        doc.diagnostic(
                            "\(key) is also in \(first); a path is set in one place", at: JSONPointer([section, key]),
                            key: true))
                }
                seen[key] = seen[key] ?? section
            }
        }
        if let length = zip.first?.values.count {
            for entry in zip where entry.values.count != length {
                diagnostics.append(
                    doc.diagnostic(
                        "zip lists are paired, so they must be equally long: \(entry.path) has \(entry.values.count) values, \(zip[0].path) has \(length)",
                        at: JSONPointer(["zip", entry.path])))
            }
        }
        let count = bases.count * grid.reduce(1) { $0 * $1.values.count } * max(1, zip.first?.values.count ?? 1)
        if count > Self.memberLimit {
            diagnostics.append(
                doc.diagnostic(
                    "the sweep has \(count) members, more than \(Self.memberLimit); split it", at: JSONPointer(["grid"])
                ))
        }
        guard diagnostics.isEmpty else { throw SpecError(diagnostics) }

        // Expansion: base-major, then the grid in the order written (last key fastest), then the zip.
        var combos: [[(path: String, value: JSONValue, mark: SourceMark?)]] = [[]]
        for entry in grid {
            combos = combos.flatMap { prefix in entry.values.map { prefix + [(entry.path, $0.0, $0.1)] } }
        }
        if let length = zip.first?.values.count {
            combos = combos.flatMap { prefix in
                (0..<length).map { i in prefix + zip.map { ($0.path, $0.values[i].0, $0.values[i].1) } }
            }
        }
        let varied = (bases.count > 1 ? ["base"] : []) + grid.map(\.path) + zip.map(\.path)
        let planner = Planner(workingDirectory: workingDirectory)
        var members: [SweepMember] = []
        var errors: [Diagnostic] = []
        var seenErrors = Set<Diagnostic>()
        for base in bases {
            for combo in combos {
                let overrides = (fixed + combo).map {
                    Override(path: $0.path.split(separator: ".").map(String.init), value: $0.value, origin: $0.mark)
                }
                do {
                    let plan = try planner.plan(specPath: base, overrides: overrides)
                    var settings = combo.map { (path: $0.path, value: $0.value) }
                    if bases.count > 1 {
                        settings.insert(("base", .string(URL(fileURLWithPath: base).lastPathComponent)), at: 0)
                    }
                    members.append(
                        SweepMember(
                            index: members.count, base: base, settings: settings, overrides: overrides, plan: plan))
                } catch {
                    for d in error.diagnostics where seenErrors.insert(d).inserted { errors.append(d) }
                }
            }
        }
        guard errors.isEmpty else { throw SpecError(errors) }
        // Two members that are the same run would be one run listed twice.
        var firstWithHash: [String: Int] = [:]
        for m in members {
            if let first = firstWithHash[m.plan.configHash] {
                throw SpecError([
                    doc.diagnostic(
                        "members \(first) (\(members[first].label)) and \(m.index) (\(m.label)) are the same run (config hash \(m.plan.configHash.prefix(16))): their settings resolve to the same spec; list each setting once",
                        at: JSONPointer([grid.isEmpty ? (zip.isEmpty ? "base" : "zip") : "grid"]))
                ])
            }
            firstWithHash[m.plan.configHash] = m.index
        }

        // Shared stages: every dependency of every member, once, in dependency order.
        var stages: [SweepStage] = []
        var index: [String: Int] = [:]
        func addPretrain(_ dep: Plan) -> String {
            if index[dep.configHash] == nil {
                let needs = dep.dependencies.map(addPretrain)
                index[dep.configHash] = stages.count
                stages.append(
                    SweepStage(
                        kind: .pretrain, configHash: dep.configHash, runDirectory: dep.runDirectory,
                        arguments: [
                            "run", dep.specPath, "--set", SweepPlan.outputArgument(dep.outputDirectory),
                            "--expect-hash",
                            dep.configHash,
                        ], needs: needs))
            }
            return dep.configHash
        }
        for i in members.indices {
            let plan = members[i].plan
            var needs = plan.dependencies.map(addPretrain)
            if let classifier = plan.stages.first(where: { $0.name == "classifier" }) {
                if index[classifier.configHash] == nil {
                    index[classifier.configHash] = stages.count
                    stages.append(
                        SweepStage(
                            kind: .classifier, configHash: classifier.configHash,
                            runDirectory: classifier.runDirectory,
                            arguments: members[i].runArguments + ["--dependencies-only"], needs: needs))
                }
                needs.append(classifier.configHash)
            }
            members[i].needs = needs
        }

        let identity = JSONValue.object(
            JSONObject([
                ("lethe", .string(LetheVersion.current)),
                (
                    "members",
                    .array(
                        members.map { m in
                            .object(
                                JSONObject([
                                    ("config_hash", .string(m.plan.configHash)),
                                    ("settings", .object(JSONObject(m.settings.map { ($0.path, $0.value) }))),
                                ]))
                        })
                ),
            ]))
        let hash = Digest.sha256(try! CanonicalJSON.string(identity))
        let output = FileSystem.resolve(spec["output"]?["dir"]?.stringValue ?? "runs", relativeTo: workingDirectory)
        // The name goes into Slurm job names: the file's stem, reduced to the characters `name` allows.
        let stem = URL(fileURLWithPath: doc.path).deletingPathExtension().lastPathComponent
        let name =
            spec["name"]?.stringValue
            ?? String(stem.map { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) ? $0 : "_" })
        let slurm: SlurmSettings
        do { slurm = try SlurmSettings.decode(spec["slurm"] ?? .object(JSONObject())) } catch {
            // The schema validated the section and filled its defaults, so this is a defect in Lethe.
            throw SpecError(
                "internal error: the resolved slurm section does not decode (\(error)); please report it",
                mark: doc.mark(JSONPointer(["slurm"])))
        }
        return SweepPlan(
            path: FileSystem.resolve(doc.path, relativeTo: workingDirectory), name: name, hash: hash,
            directory: output + "/sweeps/" + hash, members: members,
            stages: stages, varied: varied, slurm: slurm)
    }
}
