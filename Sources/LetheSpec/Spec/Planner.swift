import Foundation

/// Validates a spec against the schemas and the checks beyond them, fills defaults, resolves paths,
/// hashes every input, and produces the `Plan`.
public struct Planner: Sendable {
    public var schema: RunSpecSchema
    /// Where `output.dir` is resolved (the working directory by default).
    public var workingDirectory: String

    public init(schema: RunSpecSchema = .embedded, workingDirectory: String = FileManager.default.currentDirectoryPath)
    {
        self.schema = schema
        self.workingDirectory = workingDirectory
    }

    /// Fields that do not change what a run computes, left out of its identity (and so its hash).
    public static let notIdentity = ["/name", "/description", "/output", "/train/checkpoint_every"]

    public func plan(specPath: String, overrides: [Override] = []) throws(SpecError) -> Plan {
        let doc = try SpecDocument.load(path: specPath, overrides: overrides)
        return try plan(doc)
    }

    public func plan(_ doc: SpecDocument, visiting: [String] = []) throws(SpecError) -> Plan {
        if doc.json["kind"]?.stringValue == "sweep" {
            throw SpecError([
                doc.diagnostic(
                    "this is a sweep spec (many runs): run it with `lethe sweep \(doc.path)`; `lethe run` and `lethe plan` take one run spec",
                    at: JSONPointer(["kind"]))
            ])
        }
        var checks = SemanticChecks(doc: doc, spec: doc.json)
        checks.finiteNumbers(doc.json)
        if checks.renamedNames() { throw SpecError(Diagnostic.inSourceOrder(checks.diagnostics)) }
        let schemaProblems = doc.schemaDiagnostics(schema)
        if !schemaProblems.isEmpty || !checks.diagnostics.isEmpty {
            throw SpecError(Diagnostic.inSourceOrder(checks.diagnostics + schemaProblems))
        }

        var resolved = schema.fillingDefaults(doc.json)
        resolved = resolved.removing("/$schema")
        let specDirectory = URL(fileURLWithPath: doc.path).deletingLastPathComponent().standardizedFileURL.path
        resolved = Self.derivingLatentSize(resolved)
        checks.spec = resolved
        checks.kindRequirements()
        checks.modelShapes()
        checks.schedule()

        var inputs: [Plan.Input] = []
        var identitySubstitutions: [(String, JSONValue)] = []

        // The data set: its files are hashed, the root made absolute.
        let dataset = resolved["data"]?["dataset"]?.stringValue ?? "fashion-mnist"
        let root = FileSystem.resolve(resolved["data"]?["root"]?.stringValue ?? "", relativeTo: specDirectory)
        resolved = resolved.setting("/data/root", .string(root))
        var facts: DatasetFacts?
        do {
            facts = try DatasetFacts.inspect(dataset: dataset, root: root)
        } catch {
            if case .missing(let why) = error {
                checks.diagnostics.append(doc.diagnostic(why, at: try! JSONPointer(parsing: "/data/root")))
            }
        }
        if let facts {
            do {
                let digest = try DigestCache.shared.digest(files: facts.files, root: root)
                inputs.append(.init(role: "data", path: root, sha256: digest))
                identitySubstitutions.append(("/data/root", .string("sha256:" + digest)))
            } catch {
                checks.diagnostics.append(
                    doc.diagnostic(
                        "cannot read the data set: \(FileSystem.reason(error))",
                        at: try! JSONPointer(parsing: "/data/root")))
            }
        }

        // Refuse what cannot fit in this machine's memory before anything is allocated.
        let estimate = MemoryEstimate.of(resolved, channels: facts?.channels ?? 1, trainImages: facts?.trainCount ?? 0)
        let available = MemoryEstimate.physicalMemory
        if estimate.total > MemoryEstimate.limitShare * available {
            let culprit = estimate.culprit(resolved)
            checks.diagnostics.append(
                doc.diagnostic(
                    "the run would need \(estimate), more than this machine's \(MemoryEstimate.format(available)) of memory can hold; reduce \(culprit.dropFirst().replacingOccurrences(of: "/", with: "."))",
                    at: try! JSONPointer(parsing: culprit)))
        }

        // Retain defaults to every class the forget set does not name.
        if resolved["data"]?["retain"] == nil,
            let forget = resolved["data"]?["forget"]?["classes"]?.arrayValue?.compactMap(\.intValue),
            let count = facts?.classCount
        {
            let rest = (0..<count).filter {
                !forget.contains($0)
                    && !(resolved["data"]?["proxy_retain"]?["classes"]?.arrayValue?.compactMap(\.intValue).contains($0)
                        ?? false)
            }
            resolved = resolved.setting(
                "/data/retain", .object(JSONObject([("classes", .array(rest.map { .integer($0) }))])))
            checks.spec = resolved
        }
        for input in checks.splits(facts: facts, specDirectory: specDirectory) {
            inputs.append(input)
            let pointer = "/" + input.role.dropFirst("data.".count).split(separator: ".").joined(separator: "/")
            resolved = resolved.setting("/data" + pointer, .string(input.path))
            identitySubstitutions.append(("/data" + pointer, .string("sha256:" + input.sha256)))
        }
        checks.spec = resolved
        checks.noise(channels: facts?.channels)

        // The original model: a checkpoint file, or a pretrain spec planned (and later run) first.
        var dependencies: [Plan] = []
        if let checkpoint = resolved["model"]?["checkpoint"]?.stringValue {
            let path = FileSystem.resolve(checkpoint, relativeTo: specDirectory)
            resolved = resolved.setting("/model/checkpoint", .string(path))
            if let problem = FileSystem.problem(path, directory: false) {
                checks.diagnostics.append(
                    doc.diagnostic("checkpoint " + problem, at: try! JSONPointer(parsing: "/model/checkpoint")))
            } else {
                do {
                    let digest = try DigestCache.shared.digest(file: path)
                    inputs.append(.init(role: "model.checkpoint", path: path, sha256: digest))
                    identitySubstitutions.append(("/model/checkpoint", .string("sha256:" + digest)))
                } catch {
                    checks.diagnostics.append(
                        doc.diagnostic(
                            "cannot read the checkpoint: \(error)", at: try! JSONPointer(parsing: "/model/checkpoint")))
                }
            }
        }
        if let pretrain = resolved["model"]?["pretrain"]?.stringValue {
            let path = FileSystem.resolve(pretrain, relativeTo: specDirectory)
            resolved = resolved.setting("/model/pretrain", .string(path))
            let pointer = try! JSONPointer(parsing: "/model/pretrain")
            if visiting.contains(path) || path == URL(fileURLWithPath: doc.path).standardizedFileURL.path {
                checks.diagnostics.append(
                    doc.diagnostic(
                        "pretrain specs form a cycle: \((visiting + [path]).joined(separator: " -> "))", at: pointer))
            } else if let problem = FileSystem.problem(path, directory: false) {
                checks.diagnostics.append(doc.diagnostic("pretrain spec " + problem, at: pointer))
            } else {
                do {
                    let dependency = try plan(
                        try SpecDocument.load(path: path),
                        visiting: visiting + [URL(fileURLWithPath: doc.path).standardizedFileURL.path])
                    if dependency.kind != "pretrain" {
                        checks.diagnostics.append(
                            doc.diagnostic(
                                "\(path) is a \(dependency.kind) spec; model.pretrain must name a kind: pretrain spec",
                                at: pointer))
                    } else if let problem = Self.stageMismatch(resolved, dependency.resolved) {
                        checks.diagnostics.append(doc.diagnostic("\(path) " + problem, at: pointer))
                    } else if let mismatch = Self.architectureMismatch(
                        resolved["model"]!, dependency.resolved["model"]!,
                        tokenizerOnly: resolved["train"]?["stage"]?.stringValue == "transformer")
                    {
                        checks.diagnostics.append(
                            doc.diagnostic(
                                "the pretrain spec's model differs at \(mismatch), so its checkpoint would not fit this model",
                                at: pointer))
                    }
                    if dependency.resolved["data"]?["image_size"] != resolved["data"]?["image_size"] {
                        checks.diagnostics.append(
                            doc.diagnostic(
                                "the pretrain spec uses image_size \(dependency.resolved["data"]?["image_size"]?.intValue ?? 0), this spec \(resolved["data"]?["image_size"]?.intValue ?? 0)",
                                at: pointer))
                    }
                    // The same data held out differently: the original model would have trained on some of
                    // the images this run evaluates on.
                    let ownData = inputs.first { $0.role == "data" }?.sha256
                    let theirData = dependency.inputs.first { $0.role == "data" }?.sha256
                    if ownData != nil, ownData == theirData,
                        dependency.resolved["data"]?["test_fraction"] != resolved["data"]?["test_fraction"]
                    {
                        let theirs =
                            dependency.resolved["data"]?["test_fraction"]?.doubleValue.map { "\($0)" } ?? "none"
                        let ours = resolved["data"]?["test_fraction"]?.doubleValue.map { "\($0)" } ?? "none"
                        checks.diagnostics.append(
                            doc.diagnostic(
                                "the pretrain spec splits the same data with test_fraction \(theirs), this spec with \(ours): the original model would have trained on images this run evaluates on; use one test_fraction for both",
                                at: resolved["data"]?["test_fraction"] != nil
                                    ? try! JSONPointer(parsing: "/data/test_fraction") : pointer))
                    }
                    dependencies.append(dependency)
                    identitySubstitutions.append(("/model/pretrain", .string("config:" + dependency.configHash)))
                } catch {
                    checks.diagnostics.append(
                        doc.diagnostic(
                            "the pretrain spec \(path) is not valid:\n  "
                                + error.description.replacing("\n", with: "\n  "), at: pointer))
                }
            }
        }

        if !checks.diagnostics.isEmpty { throw SpecError(checks.diagnostics) }

        // Identity: what the run means. Labels, the output place and how often the resume state is
        // saved are not part of it; paths are replaced by the digests of what they hold.
        var spec = resolved
        for label in Self.notIdentity { spec = spec.removing(label) }
        for (pointer, value) in identitySubstitutions { spec = spec.setting(pointer, value) }
        let identity = JSONValue.object(JSONObject([("lethe", .string(LetheVersion.current)), ("spec", spec)]))
        let configHash = Digest.sha256(try! CanonicalJSON.string(identity))

        let output = FileSystem.resolve(resolved["output"]?["dir"]?.stringValue ?? "runs", relativeTo: workingDirectory)
        resolved = resolved.setting("/output/dir", .string(output))
        // Stages this run depends on live in the same runs folder: one cache, found by hash.
        dependencies = dependencies.map {
            var d = $0
            d.resolved = d.resolved.setting("/output/dir", .string(output))
            d.spec.output.dir = output
            return d
        }
        let dataDigest = inputs.first { $0.role == "data" }?.sha256 ?? ""
        let stages = Self.stages(
            kind: resolved["kind"]?.stringValue ?? "", configHash: configHash, resolved: resolved,
            dataDigest: dataDigest,
            dependencies: dependencies, outputDirectory: output, specPath: doc.path)
        let typed: RunSpec
        do { typed = try RunSpec.decode(resolved) } catch {
            // The schemas validated the spec and filled its defaults, so this is a defect in Lethe.
            throw SpecError(
                "internal error: the resolved spec does not match Lethe's typed spec (\(error)); please report it",
                mark: doc.mark(.root))
        }
        return Plan(
            resolved: resolved, spec: typed, identity: identity, configHash: configHash, specPath: doc.path,
            inputs: inputs,
            stages: stages, dependencies: dependencies, warnings: checks.warnings, memory: estimate)
    }

    /// A VQ encoder's latent grid follows from the image size and the levels (each halves the image),
    /// so an absent `latent_size` (`model.vq_autoencoder`, `model.mage.tokenizer`) is filled with it; a
    /// given one is checked against it.
    static func derivingLatentSize(_ resolved: JSONValue) -> JSONValue {
        let section: String
        let vq: JSONValue?
        switch resolved["model"]?["architecture"]?.stringValue {
        case "vq_autoencoder": (section, vq) = ("/model/vq_autoencoder", resolved["model"]?["vq_autoencoder"])
        case "mage": (section, vq) = ("/model/mage/tokenizer", resolved["model"]?["mage"]?["tokenizer"])
        default: return resolved
        }
        guard vq?["latent_size"] == nil,
            let size = resolved["data"]?["image_size"]?.intValue,
            let levels = vq?["channels"]?.arrayValue?.count,
            levels < 30
        else { return resolved }
        let factor = 1 << levels
        guard size % factor == 0, size / factor >= 1 else { return resolved }  // modelShapes reports the mismatch
        return resolved.setting(section + "/latent_size", .integer(size / factor))
    }

    /// Settings that do not shape the weights: how a model samples or is masked while pretraining.
    static let notShaping: Set<String> = [
        "pretrain_mask_ratio", "sampler", "sampling_steps", "mask_ratio", "decoding", "decoding_steps", "temperature",
    ]

    /// The first place two resolved model sections differ in what shapes the weights; with
    /// `tokenizerOnly` (a MAGE transformer stage against its tokenizer stage), the tokenizers alone.
    static func architectureMismatch(_ a: JSONValue, _ b: JSONValue, tokenizerOnly: Bool = false) -> String? {
        let arch = a["architecture"]?.stringValue ?? ""
        if a["architecture"] != b["architecture"] { return "model.architecture" }
        if tokenizerOnly {
            guard let ta = a[arch]?["tokenizer"]?.objectValue, let tb = b[arch]?["tokenizer"]?.objectValue else {
                return nil
            }
            return Set(ta.keys).union(tb.keys).sorted().first { ta[$0] != tb[$0] }.map {
                "model.\(arch).tokenizer.\($0)"
            }
        }
        guard let pa = a[arch]?.objectValue, let pb = b[arch]?.objectValue else { return nil }
        for key in Set(pa.keys).union(pb.keys).sorted() where pa[key] != pb[key] && !notShaping.contains(key) {
            return "model.\(arch).\(key)"
        }
        return nil
    }

    /// MAGE's stages chain one way: the transformer stage depends on a tokenizer stage, and a run that
    /// unlearns or evaluates depends on a transformer stage. What is wrong with `dependency`, if anything.
    static func stageMismatch(_ spec: JSONValue, _ dependency: JSONValue) -> String? {
        guard spec["model"]?["architecture"]?.stringValue == "mage",
            dependency["model"]?["architecture"]?.stringValue == "mage"
        else { return nil }
        let wanted = spec["kind"]?.stringValue == "pretrain" ? "tokenizer" : "transformer"
        let theirs = dependency["train"]?["stage"]?.stringValue ?? ""
        guard theirs != wanted else { return nil }
        return wanted == "tokenizer"
            ? "is a MAGE \(theirs) stage; the transformer stage's model.pretrain must name the tokenizer stage (train.stage: tokenizer)"
            : "is MAGE's tokenizer stage; a \(spec["kind"]?.stringValue ?? "") run needs the transformer stage (train.stage: transformer), which names the tokenizer stage in turn"
    }

    /// The classifier that gives FID, IS and accuracy their feature space is shared by every run on
    /// the same data, so metrics compare across runs: its identity has no seed of the run in it.
    public static func classifierIdentity(_ resolved: JSONValue, dataIdentity: String) -> JSONValue {
        let evaluate = resolved["evaluate"]
        var members: [(String, JSONValue)] = [
            ("lethe", .string(LetheVersion.current)), ("stage", .string("classifier")),
            ("data", .string(dataIdentity)), ("image_size", resolved["data"]?["image_size"] ?? .null),
        ]
        let settings = [
            ("steps", "classifier_steps"), ("batch_size", "classifier_batch_size"), ("lr", "classifier_lr"),
            ("schedule", "classifier_schedule"), ("min_lr", "classifier_min_lr"),
        ]
        for (name, key) in settings { members.append((name, evaluate?[key] ?? .null)) }
        if let fraction = resolved["data"]?["test_fraction"] { members.append(("test_fraction", fraction)) }
        return .object(JSONObject(members))
    }

    static func classifierHash(_ resolved: JSONValue, dataIdentity: String) -> String {
        Digest.sha256(try! CanonicalJSON.string(classifierIdentity(resolved, dataIdentity: dataIdentity)))
    }

    static func stages(
        kind: String, configHash: String, resolved: JSONValue, dataDigest: String, dependencies: [Plan],
        outputDirectory: String, specPath: String
    ) -> [Plan.Stage] {
        func stage(_ name: String, _ hash: String, spec: String?) -> Plan.Stage {
            let dir = outputDirectory + "/" + hash
            let done = FileSystem.exists(dir + "/manifest.json", directory: false)
            return Plan.Stage(
                name: name, configHash: hash, spec: spec, runDirectory: dir, status: done ? .done : .pending)
        }
        var out: [Plan.Stage] = []
        for dependency in dependencies {
            out.append(stage("pretrain", dependency.configHash, spec: dependency.specPath))
        }
        let featureMetrics: Set<String> = ["fid", "is", "cosine", "accuracy"]
        if kind != "pretrain"
            && (resolved["evaluate"]?["metrics"]?.arrayValue ?? []).contains(where: {
                featureMetrics.contains($0.stringValue ?? "")
            })
        {
            out.append(stage("classifier", classifierHash(resolved, dataIdentity: dataDigest), spec: nil))
        }
        out.append(stage(kind, configHash, spec: specPath))
        return out
    }
}

/// Digests of large inputs, memoised per process by path, size and modification time.
final class DigestCache: @unchecked Sendable {
    static let shared = DigestCache()
    private var memo: [String: (Int, Date, String)] = [:]
    private let lock = NSLock()

    func digest(file path: String) throws -> String {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        let size = (attributes[.size] as? NSNumber)?.intValue ?? -1
        let date = attributes[.modificationDate] as? Date ?? .distantPast
        if let hit = lock.withLock({ memo[path] }), hit.0 == size, hit.1 == date { return hit.2 }
        let digest = try Digest.sha256(file: path)
        lock.withLock { memo[path] = (size, date, digest) }
        return digest
    }

    func digest(files: [String], root: String) throws -> String {
        var lines: [String] = []
        for f in files.sorted() {
            let name =
                f.hasPrefix(root + "/")
                ? String(f.dropFirst(root.count + 1)) : URL(fileURLWithPath: f).lastPathComponent
            lines.append("\(try digest(file: f))  \(name)")
        }
        return Digest.sha256(lines.joined(separator: "\n"))
    }
}

extension JSONValue {
    /// A copy with the value at `pointer` replaced (intermediate objects are created).
    public func setting(_ pointer: String, _ newValue: JSONValue) -> JSONValue {
        guard let p = try? JSONPointer(parsing: pointer) else { return self }
        return setting(p.tokens[...], newValue)
    }

    private func setting(_ tokens: ArraySlice<String>, _ newValue: JSONValue) -> JSONValue {
        guard let head = tokens.first else { return newValue }
        switch self {
        case .array(var items):
            guard let i = Int(head), items.indices.contains(i) else { return self }
            items[i] = items[i].setting(tokens.dropFirst(), newValue)
            return .array(items)
        case .object(var o):
            o[head] = (o[head] ?? .object(JSONObject())).setting(tokens.dropFirst(), newValue)
            return .object(o)
        default:
            return JSONValue.object(JSONObject()).setting(tokens, newValue)
        }
    }

    /// A copy without the member at `pointer`.
    public func removing(_ pointer: String) -> JSONValue {
        guard let p = try? JSONPointer(parsing: pointer), let last = p.tokens.last else { return self }
        guard case .object(var parent)? = p.parent.resolve(in: self) else { return self }
        parent[last] = nil
        return p.parent.tokens.isEmpty ? .object(parent) : setting(p.parent.description, .object(parent))
    }
}
