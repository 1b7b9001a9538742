import LetheRuns
import Foundation
import LetheData
import LetheJSON
import LetheModels
import LetheSpec
import LetheTensor

/// The feature classifier as a cached stage (`runs/<hash>/`, the plan's `classifier` stage): trained
/// once per data set, image size and step budget, and shared by every run on that data, so FID, IS
/// and accuracy compare across runs. Its seed is fixed: the run's seed is not part of its identity.
public struct ClassifierStage {
    public let plan: Plan
    public let threads: Int

    public init(plan: Plan, threads: Int) {
        self.plan = plan
        self.threads = threads
    }

    public var stage: Plan.Stage? { plan.stages.first { $0.name == "classifier" } }

    /// Trains the classifier unless its run directory is finished (and verifies); returns that
    /// directory. Holds the stage's lock throughout, like every stage.
    @discardableResult
    public func ensure(log: (String) -> Void = { _ in }) throws -> String? {
        guard let stage else { return nil }
        return try Numerics.exclusively {
            try StageLock.holding(stage.runDirectory, log: log) {
                if RunDirectory.finished(stage.runDirectory) {
                    try RunStore.verifyForReuse(stage.runDirectory)
                    log("classifier \(stage.configHash.prefix(16)): done before, reusing \(stage.runDirectory)")
                    return stage.runDirectory
                }
                return try train(stage)
            }
        }
    }

    func train(_ stage: Plan.Stage) throws -> String {
        let context = try RunContext(plan, threads: threads)
        let (train, test, size) = (context.train, context.test, context.size)
        let rng = Philox(seed: 0).split("classifier")
        var initRNG = rng.split("init")
        let model = FeatureClassifier<Float>(
            channels: train.channels, imageSize: size, classes: train.classCount, rng: &initRNG)
        let settings = plan.spec.evaluate
        let steps = settings.classifierSteps
        var batches = RunContext.Batches(
            pool: Array(0..<train.count), batch: settings.classifierBatchSize, rng: rng.split("shuffle"))
        let dir = try RunDirectory(finalPath: stage.runDirectory)
        var loop = TrainingLoop(
            optimizer: AnyOptimizer(Adam(model.parameters, lr: settings.classifierLr)),
            schedule: LRSchedule(
                kind: Optimizers.scheduleKind(settings.classifierSchedule), baseLR: settings.classifierLr,
                warmupSteps: 0,
                totalSteps: steps, minLR: settings.classifierMinLr),
            clip: nil,
            steps: steps, module: model, progress: Progress(label: "feature classifier", total: steps, every: 100),
            resume: .init(every: plan.spec.train.checkpointEvery, threads: threads, mode: context.mode))
        try loop.run(into: dir, streams: &batches) { _, batches in
            let ids = batches.next()
            let loss = model(train.tensor(ids, size: size)).crossEntropy(ids.map { train.labels[$0] })
            return TrainingLoop.Step(loss: loss, terms: [("loss", Double(loss.scalar))], images: ids.count)
        }
        let probabilities = GradMode.withoutGrad {
            Self.probabilities(model, test, indices: Array(0..<test.count), size: size)
        }
        let accuracy = Metrics.accuracy(probabilities, classes: model.classes, labels: test.labels)
        try dir.write(
            "checkpoint.safetensors",
            bytes: Safetensors.write(model.stateDict(metadata: ["lethe_config_hash": stage.configHash])))
        try dir.write("metrics.jsonl", text: loop.curve.joined(separator: "\n") + "\n")
        try dir.write("timing.jsonl", text: loop.timing.joined(separator: "\n") + "\n")
        try dir.write(
            "eval.json",
            json: .object(
                JSONObject([
                    ("test_accuracy", .number(accuracy)), ("test_images", .integer(test.count)),
                    ("classes", .integer(model.classes)),
                    ("architecture", .string("conv16/2 conv32/2 conv64/2 fc\(model.featureWidth) fc\(model.classes)")),
                ])))
        let dataDigest = plan.inputs.first { $0.role == "data" }?.sha256 ?? ""
        try dir.write("identity.json", json: Planner.classifierIdentity(plan.resolved, dataIdentity: dataDigest))
        try dir.write("config_hash", text: stage.configHash + "\n")
        try dir.write("provenance.json", json: RunFiles.provenance(threads: threads, mode: context.mode))
        try dir.finish()
        print(
            "feature classifier \(stage.configHash.prefix(16)): test accuracy \(String(format: "%.3f", accuracy)), \(stage.runDirectory)"
        )
        return stage.runDirectory
    }

    /// The finished classifier in `dir`.
    static func load(_ dir: String, channels: Int, imageSize: Int, classes: Int) throws -> FeatureClassifier<Float> {
        var rng = Philox(seed: 0)
        let model = FeatureClassifier<Float>(channels: channels, imageSize: imageSize, classes: classes, rng: &rng)
        let path = dir + "/checkpoint.safetensors"
        do {
            try model.load(try Safetensors.read([UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))))
        } catch {
            throw RunError("\(path): cannot load the feature classifier: \(error)")
        }
        model.setTrainable(false)
        return model
    }

    /// Softmax rows for `indices`, 500 images at a time.
    static func probabilities(_ model: FeatureClassifier<Float>, _ data: LabeledImages, indices: [Int], size: Int)
        -> [Float]
    {
        stride(from: 0, to: indices.count, by: 500).flatMap { start in
            model(data.tensor(Array(indices[start..<min(indices.count, start + 500)]), size: size)).softmax().storage
        }
    }
}
