import LetheRuns
import Foundation
import LetheData
import LetheModels
import LetheJSON
import LetheSpec
import LetheTensor

/// What every executor reads from a resolved spec: data, image size, task, seeded streams, budget.
struct RunContext {
    let spec: RunSpec
    let train: LabeledImages
    let test: LabeledImages
    let size: Int
    let task: MaskTransform
    let seed: Philox
    let mode: Numerics.Mode
    let planInputs: [Plan.Input]

    init(_ plan: Plan, threads: Int) throws {
        spec = plan.spec
        planInputs = plan.inputs
        mode = Self.mode(spec.numerics.mode)
        Numerics.configure(threads: threads, mode: mode)
        // Never train on wrong products: the BLAS kernel in use is checked (once per machine).
        do { try BLASSelfCheck.verify() } catch { throw RunError(error.description) }
        let data = spec.data
        let loaded: (train: LabeledImages, test: LabeledImages)
        switch data.dataset {
        case .imageFolder: loaded = try UserData.imageFolder(data.root, testFraction: try Self.testFraction(data)).pair
        case .npz: loaded = try UserData.npz(data.root, testFraction: try Self.testFraction(data)).pair
        case .npy: loaded = try UserData.npyFolder(data.root, testFraction: try Self.testFraction(data)).pair
        case .fashionMNIST:
            loaded = (
                try FashionMNIST.load(root: data.root, split: .train),
                try FashionMNIST.load(root: data.root, split: .test)
            )
        }
        (train, test) = (loaded.train.fitting(data.imageSize), loaded.test.fitting(data.imageSize))
        size = data.imageSize
        task = MaskTransform(kind: Self.maskKind(spec.task.mask), ratio: spec.task.ratio)
        seed = Philox(seed: spec.seed)
        if let d = spec.model.diffusion {
            try Self.checkSchedule(d)
        }
        if let m = spec.model.mage {
            try Self.checkVisibleTokens(spec, cell: size / m.tokenizer.latentSize, size: size)
        }
    }

    /// MAGE's encoder reads the visible tokens only, so every mask the run can draw (the task's, each
    /// evaluation mask, each unlearning step's) must leave at least one token whole.
    static func checkVisibleTokens(_ spec: RunSpec, cell: Int, size: Int) throws {
        func refuse(_ field: String) -> RunError {
            RunError(
                "\(field): this mask can hide part of every \(cell)x\(cell)-pixel token of a \(size)x\(size) image, and MAGE completes from the tokens it leaves whole; use a mask that keeps one token visible"
            )
        }
        if MaskTransform(kind: maskKind(spec.task.mask), ratio: spec.task.ratio).canTouchEveryCell(
            size: size, cell: cell)
        {
            throw refuse("task")
        }
        for (i, m) in spec.evaluate.masks.enumerated()
        where MaskTransform(kind: maskKind(m.mask), ratio: m.ratio).canTouchEveryCell(size: size, cell: cell) {
            throw refuse("evaluate.masks[\(i)]")
        }
        if let mask = spec.unlearn?.mask,
            let random = UnlearningMask(mask, task: MaskTransform(kind: .centerCrop, ratio: 0.25)).random,
            random.canTouchEveryCell(size: size, cell: cell)
        {
            throw refuse(
                mask.kind == .randomPatches
                    ? "unlearn.mask (patch_size \(mask.patchSize) is not a multiple of MAGE's \(cell)-pixel tokens)"
                    : "unlearn.mask (random boxes up to \(mask.ratio[1]) of the image)")
        }
    }

    /// Sampling starts from pure noise, so the schedule must leave (almost) none of x_0 in x_T.
    static func checkSchedule(_ d: ModelSpec.Diffusion) throws {
        let process = DiffusionProcess(
            timesteps: d.timesteps, betaStart: d.betaStart, betaEnd: d.betaEnd,
            schedule: Families.diffusionSchedule(d.betaSchedule))
        let last = process.finalAlphaBar
        guard last < DiffusionProcess.maximumFinalAlphaBar else {
            throw RunError(
                "model.diffusion: the \(d.betaSchedule.rawValue) schedule over \(d.timesteps) steps leaves alpha-bar_T = \(String(format: "%.3g", last)), so x_T keeps \(String(format: "%.0f", 100 * last.squareRoot()))% of the image while sampling starts from pure noise; it must be below \(DiffusionProcess.maximumFinalAlphaBar) (use beta_schedule: scaled_linear or cosine, or raise beta_end or timesteps)"
            )
        }
    }

    static func mode(_ mode: NumericsSpec.Mode) -> Numerics.Mode {
        switch mode {
        case .fast: return .fast
        case .strict: return .strict
        }
    }

    static func maskKind(_ mask: TaskSpec.Mask) -> MaskTransform.Kind {
        switch mask {
        case .centerCrop: return .centerCrop
        case .outpaint: return .outpaint
        case .randomBox: return .randomBox
        }
    }

    /// The schema fills `test_fraction` for every data set without a fixed test split.
    static func testFraction(_ data: DataSpec) throws -> Double {
        guard let fraction = data.testFraction else {
            throw RunError("data.test_fraction is not set for \(data.dataset.rawValue) data")
        }
        return fraction
    }

    var perClassLimit: Int? { spec.data.perClassLimit }
    var testPerClass: Int? { spec.evaluate.testPerClass }

    /// The training samples of split `data.<name>`: its classes (at most `per_class_limit` each), or
    /// the indices its index file lists.
    func split(_ name: String, in data: LabeledImages) throws -> [Int] {
        guard let split = spec.data.split(name) else { throw RunError("data.\(name) is not set") }
        if let classes = split.classes {
            let found = data.indices(ofClasses: classes, perClassLimit: perClassLimit)
            guard !found.isEmpty else {
                throw RunError(
                    "data.\(name): no training images of classes \(classes) (the data set's labels are 0...\(data.classCount - 1))"
                )
            }
            return found
        }
        guard let path = indexFiles[name] else { throw RunError("data.\(name): the plan has no index file for it") }
        let indices: [Int]
        do { indices = try IndexFile.read(path) } catch { throw RunError("\(path): \(error)") }
        if let bad = indices.first(where: { $0 < 0 || $0 >= data.count }) {
            throw RunError("\(path): sample \(bad) is not in the training set (0...\(data.count - 1))")
        }
        guard !indices.isEmpty else { throw RunError("\(path): data.\(name) lists no samples") }
        return indices
    }

    /// The classes a split covers: its class list, or the labels of the samples its index file lists.
    /// Held-out evaluation uses the test images of these classes.
    func classes(_ name: String) throws -> [Int] {
        if let classes = spec.data.split(name)?.classes { return classes }
        return Set(try split(name, in: train).map { train.labels[$0] }).sorted()
    }

    /// The original model: the family the spec describes, loaded strictly from the checkpoint of the
    /// pretrain stage or `model.checkpoint`.
    func originalModel(_ plan: Plan, rng: inout Philox) throws -> any ModelFamily {
        let family = family(rng: &rng)
        try load(plan, into: family.module)
        return family
    }

    /// What the original model's completions depend on beyond the evaluator's settings: its weights
    /// (the pretrain stage's config hash or the checkpoint's digest) and the model section, whose
    /// sampling settings may differ from the pretrain spec's.
    func originalIdentity(_ plan: Plan) -> String? {
        let weights =
            plan.dependencies.first.map { "config:" + $0.configHash }
            ?? plan.inputs.first { $0.role == "model.checkpoint" }.map { "sha256:" + $0.sha256 }
        guard let weights, let model = plan.resolved["model"], let text = try? CanonicalJSON.string(model) else {
            return nil
        }
        return weights + " " + text
    }

    /// Loads `module` strictly from the checkpoint of the plan's pretrain stage or `model.checkpoint`,
    /// whose paths carry `prefix`.
    func load(_ plan: Plan, into module: Module<Float>, prefix: String = "") throws {
        let path =
            plan.dependencies.first.map { $0.runDirectory + "/checkpoint.safetensors" } ?? spec.model.checkpoint ?? ""
        let weights: Safetensors.File
        do {
            weights = try Safetensors.read([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
        } catch {
            throw RunError("\(path): cannot load the original model: \(error)")
        }
        do { try module.load(weights, prefix: prefix) } catch {
            throw RunError("\(path) does not fit the model in the spec:\n\(error)")
        }
    }

    /// Held-out test images of the retain and the forget classes, with the feature classifier of the
    /// plan's classifier stage when metrics need it.
    func evaluator(_ plan: Plan) throws -> ModelEvaluator {
        let classifier = try plan.stages.first { $0.name == "classifier" }.map {
            try ClassifierStage.load(
                $0.runDirectory, channels: train.channels, imageSize: size, classes: train.classCount)
        }
        var splits = try ["retain", "forget"].filter { spec.data.split($0) != nil }.map {
            ModelEvaluator.Split(
                name: $0, indices: test.indices(ofClasses: try classes($0), perClassLimit: testPerClass))
        }
        if splits.isEmpty {
            splits = [
                .init(name: "all", indices: test.indices(ofClasses: 0..<train.classCount, perClassLimit: testPerClass))
            ]
        }
        if let empty = splits.first(where: { $0.indices.isEmpty }) {
            throw RunError(
                "the test set has no images of the \(empty.name) classes, so they cannot be evaluated (add test images of those classes, or raise data.test_fraction)"
            )
        }
        return ModelEvaluator(
            test: test, size: size, masks: evaluationMasks, rng: seed.split("eval"), splits: splits,
            classifier: classifier, settings: spec.evaluate, keep: max(1, spec.evaluate.gridSamples / 2))
    }

    /// The evaluation masks (`evaluate.masks`), the headline one first.
    var evaluationMasks: [EvaluationMask] {
        spec.evaluate.masks.map {
            EvaluationMask(transform: MaskTransform(kind: Self.maskKind($0.mask), ratio: $0.ratio))
        }
    }

    /// eval.json of an unlearn or evaluate run: the header, each model's and each reference's headline
    /// metrics (`original`, `unlearned`, `ground_truth`, `mean_fill`, `noise_fill`: split -> metric ->
    /// value), every mask's metrics with intervals (`per_mask`), and how the statistics were computed.
    func evaluationRecord(
        _ evaluator: ModelEvaluator, method: String, models: [(name: String, result: ModelEvaluator.Result)]
    ) -> JSONObject {
        var eval = evaluationHeader(evaluator, method: method)
        let all = models + ModelEvaluator.references.map { ($0, evaluator.reference($0)) }
        for (name, result) in all { eval[name] = .object(result.metrics) }
        eval["per_mask"] = evaluator.perMaskJSON(all)
        eval["statistics"] = evaluator.statisticsJSON
        return eval
    }

    /// What every eval.json starts with: the images measured and the feature network.
    func evaluationHeader(_ evaluator: ModelEvaluator, method: String) -> JSONObject {
        var o = JSONObject()
        o["method"] = .string(method)
        o["images"] = .object(JSONObject(evaluator.splits.map { ($0.name, .integer($0.indices.count)) }))
        o["task"] = .object(JSONObject([("mask", .string(task.kind.rawValue)), ("ratio", .number(task.ratio))]))
        o["evaluation_masks"] = .array(evaluator.masks.map { .string($0.name) })
        o["headline_mask"] = .string(evaluator.masks[0].name)
        if let c = evaluator.classifier {
            o["feature_network"] = .object(
                JSONObject([
                    (
                        "name",
                        .string(
                            "lethe feature classifier (trained on the run's data; stands in for Inception and CLIP)")
                    ),
                    ("features", .integer(c.featureWidth)),
                ]))
        }
        return o
    }

    /// Sample grid rows (masked input, ground truth, then each model's completion), each row the
    /// first `grid_samples / 2` retain and forget test images.
    func sampleRows(_ results: [ModelEvaluator.Result]) -> [Tensor<Float>] {
        let k = max(1, spec.evaluate.gridSamples / 2)
        func row(_ pick: KeyPath<Measured, [Tensor<Float>]>, _ r: ModelEvaluator.Result) -> Tensor<Float> {
            Tensor.concat(
                ["retain", "forget", "all"].compactMap { r.measured.first?[$0] }.map { $0.sample(pick, count: k) },
                axis: 0)
        }
        return [row(\.masked, results[0]), row(\.truth, results[0])] + results.map { row(\.completed, $0) }
    }

    /// Index files of the splits, from the plan's inputs (paths resolved against the spec).
    var indexFiles: [String: String] {
        Dictionary(
            planInputs.compactMap { input in
                input.role.hasPrefix("data.") && input.role.hasSuffix(".index_file")
                    ? (String(input.role.dropFirst(5).dropLast(".index_file".count)), input.path) : nil
            }, uniquingKeysWith: { a, _ in a })
    }

    /// The exact samples a run used, by split: indices into the training set (`train`) or the test
    /// set (`test`), each with its count and the SHA-256 of its canonical JSON, so two runs' splits
    /// compare at a glance and the manifest hashes them.
    static func splitsRecord(train: [(String, [Int])], test: [(String, [Int])]) -> JSONValue {
        func entry(_ set: String, _ ids: [Int]) -> JSONValue {
            let list = JSONValue.array(ids.map { .integer($0) })
            return .object(
                JSONObject([
                    ("set", .string(set)), ("count", .integer(ids.count)),
                    ("sha256", .string(Digest.sha256(JSONText.scalar(list)))), ("indices", list),
                ]))
        }
        return .object(
            JSONObject(train.map { ($0.0, entry("train", $0.1)) } + test.map { ($0.0, entry("test", $0.1)) }))
    }

    func family(rng: inout Philox) -> any ModelFamily {
        Families.make(
            model: spec.model, imageSize: size, channels: train.channels, vqEmbedding: spec.unlearn?.vqEmbedding,
            stage: spec.kind == .pretrain ? spec.train.stage : nil, rng: &rng)
    }

    /// Draws batches of `batch` indices from `pool`, reshuffling with `rng` after each pass.
    struct Batches: StageStreams {
        let pool: [Int]
        let batch: Int
        var rng: Philox
        var order: [Int] = []
        var cursor = 0

        mutating func next() -> [Int] {
            if cursor + batch > order.count {
                order = rng.permutation(pool.count)
                cursor = 0
            }
            defer { cursor += batch }
            return (cursor..<min(order.count, cursor + batch)).map { pool[order[$0]] }
        }
    }
}

/// The parts every training run shares.
enum Training {
    /// Writes the results and the common files, then the manifest, and moves the run into place.
    static func finish(
        _ dir: RunDirectory, plan: Plan, module: Module<Float>?, curve: [String], timing: [String],
        eval: JSONValue, samples: [Tensor<Float>], threads: Int, mode: Numerics.Mode, report: RunReport? = nil,
        prefix: String = ""
    ) throws -> String {
        if let module {
            try dir.write(
                "checkpoint.safetensors",
                bytes: Safetensors.write(
                    module.stateDict(prefix: prefix, metadata: ["lethe_config_hash": plan.configHash])))
        }
        if !curve.isEmpty { try dir.write("metrics.jsonl", text: curve.joined(separator: "\n") + "\n") }
        if !timing.isEmpty { try dir.write("timing.jsonl", text: timing.joined(separator: "\n") + "\n") }
        try dir.write("eval.json", json: eval)
        do { try ImageGrid.write(rows: samples, to: dir.path("samples.png")) } catch {
            throw RunError(error.description)
        }
        try report?.write(into: dir)
        try RunFiles.writeCommon(plan, into: dir, threads: threads, mode: mode)
        try dir.finish()
        return plan.runDirectory
    }
}
