import LetheRuns
import Foundation
import LetheData
import LetheJSON
import LetheModels
import LetheSpec
import LetheTensor

/// Executes a `kind: pretrain` plan into its run directory: trains the I2I model on every class,
/// evaluates completion of held-out images, and writes checkpoint, curve, samples and provenance.
public struct Pretrainer: StageExecutor {
    public let plan: Plan
    public let threads: Int

    public init(plan: Plan, threads: Int) {
        self.plan = plan
        self.threads = threads
    }

    public func execute() throws -> String {
        let context = try RunContext(plan, threads: threads)
        let spec = context.spec
        let size = context.size
        let task = context.task
        let train = context.train
        let test = context.test
        let trainIndices = train.indices(ofClasses: 0..<train.classCount, perClassLimit: context.perClassLimit)
        let testIndices = test.indices(ofClasses: 0..<train.classCount, perClassLimit: context.testPerClass)
        guard !testIndices.isEmpty else {
            throw RunError(
                "the test set holds no images to evaluate the pretrained model on (add test images, or raise data.test_fraction)"
            )
        }
        let root0 = context.seed
        var initRNG = root0.split("init")
        var masks = root0.split("masks")
        var noise = root0.split("noise")
        let family = context.family(rng: &initRNG)

        let training = spec.train
        let dir = try RunDirectory(finalPath: plan.runDirectory)
        try dir.write(
            "splits.json",
            json: RunContext.splitsRecord(train: [("train", trainIndices)], test: [("test", testIndices)]))
        var batches = RunContext.Batches(pool: trainIndices, batch: training.batchSize, rng: root0.split("shuffle"))
        var loop = TrainingLoop(
            optimizer: Optimizers.make(training.optimizer, parameters: family.module.parameters.filter(\.requiresGrad)),
            schedule: Optimizers.schedule(training), clip: training.gradClip, steps: training.steps,
            module: family.module,
            progress: Progress(
                label: "pretrain \(spec.model.architecture.rawValue)", total: training.steps, every: training.logEvery)
        )
        try loop.run(into: dir) { _ in
            let x = train.tensor(batches.next(), size: size)
            let hidden = task.hidden(size: size, rng: &masks)
            let loss = family.trainingLoss(x, hidden: hidden, rng: &noise)
            return TrainingLoop.Step(loss: loss, terms: [("loss", Double(loss.scalar))], images: x.shape[0])
        }

        let evaluation = GradMode.withoutGrad {
            Evaluation.completion(
                family, test: test, indices: testIndices, size: size, task: task, rng: root0.split("eval"))
        }
        let gridCount = spec.evaluate.gridSamples
        return try Training.finish(
            dir, plan: plan, module: family.module, curve: loop.curve, timing: loop.timing, eval: evaluation.json,
            samples: evaluation.samples(gridCount), threads: threads, mode: context.mode)
    }
}

enum Optimizers {
    static func make(_ o: TrainSpec.Optimizer, parameters: [Tensor<Float>]) -> AnyOptimizer {
        let betas = (o.betas[0], o.betas[1])  // the schema holds exactly two
        switch o.name {
        case .sgd: return AnyOptimizer(SGD(parameters, lr: o.lr, momentum: o.momentum, weightDecay: o.weightDecay))
        case .adamw:
            return AnyOptimizer(Adam.adamW(parameters, lr: o.lr, betas: betas, eps: o.eps, weightDecay: o.weightDecay))
        case .adam:
            return AnyOptimizer(Adam(parameters, lr: o.lr, betas: betas, eps: o.eps, weightDecay: o.weightDecay))
        }
    }

    static func scheduleKind(_ kind: TrainSpec.Schedule.Kind) -> LRSchedule.Kind {
        switch kind {
        case .constant: return .constant
        case .cosine: return .cosine
        }
    }

    static func schedule(_ t: TrainSpec) -> LRSchedule {
        let kind = scheduleKind(t.schedule.kind)
        return LRSchedule(
            kind: kind, baseLR: t.optimizer.lr, warmupSteps: t.schedule.warmupSteps, totalSteps: t.steps,
            minLR: t.schedule.minLr)
    }

    static func gradNorm(_ parameters: [Tensor<Float>]) -> Double {
        var total = 0.0
        for p in parameters { for g in p.grad ?? [] { total += Double(g) * Double(g) } }
        return total.squareRoot()
    }
}

/// Any optimiser behind one concrete type, so the spec picks it at run time.
struct AnyOptimizer {
    private var base: any Optimizer<Float>
    init(_ base: some Optimizer<Float>) { self.base = base }
    var parameters: [Tensor<Float>] { base.parameters }
    var learningRate: Double {
        get { base.learningRate }
        set { base.learningRate = newValue }
    }
    mutating func step() { base.step() }
    func zeroGrad() { base.parameters.forEach { $0.zeroGrad() } }
}
