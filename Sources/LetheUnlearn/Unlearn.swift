import LetheRuns
import Foundation
import LetheData
import LetheJSON
import LetheModels
import LetheSpec
import LetheTensor

/// Executes a `kind: unlearn` plan: the paper's objective ("ours") or one of its baselines,
///
///     ours: L = d(E(T(x_r)), E0(T(x_r))) + alpha * d(E(T(x_f)), E0(T(n)))
///
/// where only the encoder E trains, the decoder and the teacher E0 (the original encoder) are frozen,
/// and the noise n passes through the same mask T. Then it evaluates the original and the unlearned
/// model on held-out retain and forget images and writes the report.
public struct Unlearner: StageExecutor {
    public let plan: Plan
    public let threads: Int

    public init(plan: Plan, threads: Int) {
        self.plan = plan
        self.threads = threads
    }

    public func execute() throws -> String {
        let context = try RunContext(plan, threads: threads)
        guard let settings = context.spec.unlearn else {
            throw RunError("unlearn is not set (the schema requires it for kind: unlearn)")
        }
        let method = settings.method
        let proxy = settings.proxyRetain

        // Student and frozen teacher, both loaded strictly from the original checkpoint.
        var initRNG = context.seed.split("init")
        let student = try context.originalModel(plan, rng: &initRNG)
        let teacher = try context.originalModel(plan, rng: &initRNG)
        teacher.module.setTrainable(false)
        student.module.setTrainable(method.trainsWholeModel)
        student.fixedModules.forEach { $0.setTrainable(false) }
        if !method.trainsWholeModel { student.encoderParameters.forEach { $0.requiresGrad = true } }

        let (train, size, task) = (context.train, context.size, context.task)
        let forgetPool = try context.split("forget", in: train)
        let retainPool = try context.split(proxy ? "proxy_retain" : "retain", in: train)
        let training = context.spec.train
        var streams = Streams(
            retain: RunContext.Batches(pool: retainPool, batch: training.batchSize, rng: context.seed.split("retain")),
            forget: RunContext.Batches(
                pool: forgetPool, batch: training.forgetBatchSize, rng: context.seed.split("forget")),
            noise: context.seed.split("noise"), masks: context.seed.split("masks"))
        let noiseModel = try NoiseModel(
            settings.noise, forgetImages: { train.tensor(forgetPool, size: size) },
            trainingImages: { train.tensor(Array(0..<train.count), size: size) })
        let objective = Objective(settings)
        let stepMask = UnlearningMask(settings.mask, task: task)
        let draws = context.seed.split("draws")

        let dir = try RunDirectory(finalPath: plan.runDirectory)
        let evaluator = try context.evaluator(plan)
        try dir.write(
            "splits.json",
            json: RunContext.splitsRecord(
                train: [("forget", forgetPool), (proxy ? "proxy_retain" : "retain", retainPool)],
                test: evaluator.splits.map { ("test_" + $0.name, $0.indices) }))
        var loop = TrainingLoop(
            optimizer: Optimizers.make(
                training.optimizer, parameters: student.module.parameters.filter(\.requiresGrad)),
            schedule: Optimizers.schedule(training), clip: training.gradClip, steps: training.steps,
            module: student.module,
            progress: Progress(label: "unlearn (\(method.rawValue))", total: training.steps, every: training.logEvery),
            resume: .init(every: training.checkpointEvery, threads: threads, mode: context.mode, family: student))
        try loop.run(into: dir, streams: &streams) { step, s in
            let xr = train.tensor(s.retain.next(), size: size)
            let xf = train.tensor(s.forget.next(), size: size)
            let n = try noiseModel.sample(like: xf, retain: xr, rng: &s.noise)
            let hidden = stepMask.hidden(size: size, rng: &s.masks)
            let terms = method.terms(
                student: student, teacher: teacher, retain: xr, forget: xf, noise: n, hidden: hidden,
                draws: draws.split(UInt64(step)), objective: objective)
            return TrainingLoop.Step(
                loss: terms.total,
                terms: [
                    ("total", Double(terms.total.scalar)), ("retain_term", Double(terms.retain.scalar)),
                    ("forget_term", Double(terms.forget.scalar)),
                ],
                images: xr.shape[0] + xf.shape[0])
        }

        let original = evaluator.evaluate(teacher, cachedAs: context.originalIdentity(plan))
        let unlearned = evaluator.evaluate(student)
        var eval = context.evaluationRecord(
            evaluator, method: method.tableRow(proxy: proxy),
            models: [("original", original), ("unlearned", unlearned)])
        eval["budget"] = .object(
            JSONObject([
                ("steps", .integer(training.steps)),
                (
                    "forget_epochs",
                    .number(Double(training.steps * training.forgetBatchSize) / Double(max(1, forgetPool.count)))
                ),
                ("forget_images", .integer(forgetPool.count)),
            ]))
        let samples = context.sampleRows([original, unlearned])
        let report = RunReport(
            plan: plan, eval: JSONValue.object(eval), curve: loop.curve,
            models: [(name: "original", result: original), (name: "unlearned", result: unlearned)],
            curveKeys: ["retain_term", "forget_term"])
        return try Training.finish(
            dir, plan: plan, module: student.module, curve: loop.curve, timing: loop.timing, eval: .object(eval),
            samples: samples, threads: threads, mode: context.mode, report: report)
    }
}

/// What an unlearning run carries from step to step: the retain and forget batch orders and the noise
/// and mask streams (saved with the state a run resumes from).
private struct Streams: StageStreams {
    var retain: RunContext.Batches
    var forget: RunContext.Batches
    var noise: Philox
    var masks: Philox
}

/// The mask of each unlearning step (`unlearn.mask`): a random one drawn per step, or the task's T.
struct UnlearningMask {
    let random: RandomMask?
    let task: MaskTransform

    init(_ spec: UnlearnSpec.Mask, task: MaskTransform) {
        self.task = task
        let range = spec.ratio[0]...max(spec.ratio[0], spec.ratio[1])
        switch spec.kind {
        case .task: random = nil
        case .randomBox: random = RandomMask(kind: .box, ratio: range)
        case .randomPatches: random = RandomMask(kind: .patches(size: spec.patchSize), ratio: range)
        }
    }

    func hidden(size: Int, rng: inout Philox) -> [Bool] {
        random?.hidden(size: size, rng: &rng) ?? task.hidden(size: size, rng: &rng)
    }
}

/// The distance between student and teacher embeddings, summed over feature maps, and the method
/// settings the terms read.
struct Objective {
    let alpha: Float
    let distance: UnlearnSpec.Distance
    let normalize: Bool
    var noiseTarget: UnlearnSpec.Noise.Target? = nil
    var retainTerm: UnlearnSpec.RetainTerm? = nil

    init(alpha: Float, distance: UnlearnSpec.Distance, normalize: Bool) {
        (self.alpha, self.distance, self.normalize) = (alpha, distance, normalize)
    }

    init(_ settings: UnlearnSpec) {
        self.init(alpha: Float(settings.alpha), distance: settings.distance, normalize: settings.normalizeEmbeddings)
        noiseTarget = settings.noise.target
        retainTerm = settings.retainTerm
    }

    func distance(_ a: [Tensor<Float>], _ b: [Tensor<Float>]) -> Tensor<Float> {
        zip(a.dropFirst(), b.dropFirst()).reduce(one(a[0], b[0])) { $0 + one($1.0, $1.1) }
    }

    /// mse: mean over every element (the authors' code); l2: per-sample L2 norm, averaged (the paper).
    func one(_ a: Tensor<Float>, _ b: Tensor<Float>) -> Tensor<Float> {
        var (x, y) = (a.reshaped([a.shape[0], -1]), b.reshaped([b.shape[0], -1]))
        if normalize {
            x = x / (x.square().sum(axis: 1, keepDims: true) + 1e-12).sqrt()
            y = y / (y.square().sum(axis: 1, keepDims: true) + 1e-12).sqrt()
        }
        switch distance {
        case .l2: return ((x - y).square().sum(axis: 1) + 1e-12).sqrt().mean()
        case .mse: return x.mseLoss(y)
        }
    }
}
