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
        let family = context.family(rng: &initRNG)
        if let origin = family.pretrainingOrigin {
            try context.load(plan, into: origin.module, prefix: origin.prefix)
            origin.module.setTrainable(false)
        }
        let tokenizerStage = (family as? MAGEFamily).flatMap { $0.stage == .tokenizer ? $0 : nil }

        let training = spec.train
        let dir = try RunDirectory(finalPath: plan.runDirectory)
        try dir.write(
            "splits.json",
            json: RunContext.splitsRecord(train: [("train", trainIndices)], test: [("test", testIndices)]))
        var streams = Streams(
            batches: RunContext.Batches(pool: trainIndices, batch: training.batchSize, rng: root0.split("shuffle")),
            masks: root0.split("masks"), noise: root0.split("noise"), probes: [])
        var loop = TrainingLoop(
            optimizer: Optimizers.make(training.optimizer, parameters: family.stageParameters),
            schedule: Optimizers.schedule(training), clip: training.gradClip, steps: training.steps,
            module: family.module,
            progress: Progress(
                label: "pretrain \(spec.model.architecture.rawValue)", total: training.steps, every: training.logEvery),
            resume: .init(every: training.checkpointEvery, threads: threads, mode: context.mode, family: family)
        )
        // The budget probe: the hole PSNR of a fixed set of held-out images under the headline
        // evaluation mask, every tenth of the run, so eval.json can say whether training had converged.
        let probe = BudgetProbe(
            test: test, indices: Array(testIndices.prefix(BudgetProbe.images)), size: size,
            mask: context.evaluationMasks[0].transform, rng: root0.split("probe"), steps: training.steps)
        try loop.run(into: dir, streams: &streams) { step, s in
            if probe.due(step) { s.probes.append(.init(step: step, psnr: ExactDouble(probe.measure(family)))) }
            let x = train.tensor(s.batches.next(), size: size)
            let hidden = task.hidden(size: size, rng: &s.masks)
            let loss = family.trainingLoss(x, hidden: hidden, rng: &s.noise)
            return TrainingLoop.Step(loss: loss, terms: [("loss", Double(loss.scalar))], images: x.shape[0])
        }
        let probes =
            streams.probes.map { (step: $0.step, psnr: $0.psnr.value) } + [(training.steps, probe.measure(family))]
        let checkpoint = family.checkpointPrefix
        if let tokenizer = tokenizerStage {
            let (record, samples) = TokenizerEvaluation.record(
                tokenizer, test: test, indices: testIndices, size: size, settings: spec.evaluate,
                rng: root0.split("eval"),
                budget: BudgetProbe.json(probes, steps: training.steps, measure: "reconstruction PSNR"))
            return try Training.finish(
                dir, plan: plan, module: checkpoint.module, curve: loop.curve, timing: loop.timing, eval: record,
                samples: samples, threads: threads, mode: context.mode, prefix: checkpoint.prefix)
        }

        // Completion of every held-out image under every evaluation mask: PSNR of the hole, with the
        // mean-fill floor beside it.
        let eval = root0.split("eval")
        let gridCount = spec.evaluate.gridSamples
        var perMask: [JSONValue] = []
        var samples: [Tensor<Float>] = []
        for mask in context.evaluationMasks {
            var draws = eval.split("complete").split(mask.name)
            let m = Evaluation.measure(
                test: test, indices: testIndices, size: size, mask: mask.transform,
                maskRNG: eval.split("masks").split(mask.name), classifier: nil, keep: gridCount
            ) { x, hidden in family.complete(x, hidden: hidden, rng: &draws) }
            let stream = eval.split("bootstrap").split(mask.name)
            let resamples = spec.evaluate.bootstrap
            perMask.append(
                .object(
                    JSONObject([
                        ("name", .string(mask.name)),
                        (
                            "psnr_hidden_region",
                            .object(
                                JSONObject([
                                    ("model", Statistics.mean(m.psnr, resamples: resamples, rng: stream).json),
                                    (
                                        "mean_fill_baseline",
                                        Statistics.mean(m.meanFillPSNR, resamples: resamples, rng: stream).json
                                    ),
                                ]))
                        ),
                    ])))
            if samples.isEmpty {
                samples = [\Measured.masked, \.truth, \.completed].map { m.sample($0, count: gridCount) }
            }
        }
        let headline = perMask[0]["psnr_hidden_region"]
        let record = JSONValue.object(
            JSONObject([
                ("images", .integer(testIndices.count)),
                ("headline_mask", .string(context.evaluationMasks[0].name)),
                (
                    "psnr_hidden_region",
                    .object(
                        JSONObject([
                            ("model", headline?["model"]?["value"] ?? .null),
                            ("mean_fill_baseline", headline?["mean_fill_baseline"]?["value"] ?? .null),
                        ]))
                ),
                ("per_mask", .array(perMask)),
                ("budget", BudgetProbe.json(probes, steps: training.steps)),
            ]))
        return try Training.finish(
            dir, plan: plan, module: checkpoint.module, curve: loop.curve, timing: loop.timing, eval: record,
            samples: samples, threads: threads, mode: context.mode, prefix: checkpoint.prefix)
    }
}

/// What pretraining carries from step to step: the batch order, the mask and noise streams and the
/// budget probe's readings so far (saved with the state a run resumes from).
private struct Streams: StageStreams {
    struct Probe: Codable {
        var step: Int
        var psnr: ExactDouble
    }
    var batches: RunContext.Batches
    var masks: Philox
    var noise: Philox
    var probes: [Probe]
}

/// Whether a pretraining budget sufficed: the hole PSNR of a fixed set of held-out images (MAGE's
/// tokenizer stage: the PSNR of their reconstructions), measured every tenth of the run; converged
/// when it gains less than `threshold` dB over the last fifth.
struct BudgetProbe {
    static let images = 128
    static let threshold = 0.1
    let test: LabeledImages
    let indices: [Int]
    let size: Int
    let mask: MaskTransform
    let rng: Philox
    let steps: Int

    var every: Int { max(1, steps / 10) }
    func due(_ step: Int) -> Bool { step % every == 0 }

    func measure(_ family: any ModelFamily) -> Double {
        if let tokenizer = family as? MAGEFamily, tokenizer.stage == .tokenizer {
            // The tokenizer stage: PSNR of whole reconstructed images.
            let x = test.tensor(indices, size: size)
            let psnr = TokenizerEvaluation.psnr(GradMode.withoutGrad { tokenizer.reconstruct(x) }, x)
            return psnr.reduce(0, +) / Double(max(1, psnr.count))
        }
        var draws = rng.split("complete")
        let m = Evaluation.measure(
            test: test, indices: indices, size: size, mask: mask, maskRNG: rng.split("masks"), classifier: nil,
            keep: 0
        ) { x, hidden in family.complete(x, hidden: hidden, rng: &draws) }
        return m.psnr.reduce(0, +) / Double(max(1, m.psnr.count))
    }

    /// The probe curve, the gain over the last fifth of the steps and the verdict; `measure` names
    /// what was probed (the key of the curve is it, snake-cased, plus `_probe`).
    static func json(_ probes: [(step: Int, psnr: Double)], steps: Int, measure: String = "hole PSNR") -> JSONValue {
        let last = probes.last!
        let start = probes.min {
            abs(Double($0.step) - 0.8 * Double(steps)) < abs(Double($1.step) - 0.8 * Double(steps))
        }!
        let gain = last.psnr - start.psnr
        return .object(
            JSONObject([
                ("steps", .integer(steps)),
                ("probe_images", .integer(images)),
                (
                    measure.lowercased().replacingOccurrences(of: " ", with: "_") + "_probe",
                    .array(
                        probes.map { .object(JSONObject([("step", .integer($0.step)), ("psnr", .number($0.psnr))])) })
                ),
                ("gain_last_fifth_db", .number(gain)),
                ("converged", .bool(gain < threshold)),
                (
                    "criterion",
                    .string("\(measure) gains less than \(threshold) dB from step \(start.step) to \(last.step)")
                ),
            ]))
    }
}

extension Statistics.Estimate {
    /// {"value": v, "ci95": [lo, hi]} (no interval without resamples).
    var json: JSONValue {
        var o = JSONObject([("value", .number(value))])
        if let i = interval { o["ci95"] = .array([.number(i.lo), .number(i.hi)]) }
        return .object(o)
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
    var state: OptimizerState<Float> { base.state }
    mutating func load(_ state: OptimizerState<Float>) throws { try base.load(state) }
    func zeroGrad() { base.parameters.forEach { $0.zeroGrad() } }
}

/// What MAGE's tokenizer stage reports: the reconstruction PSNR of every held-out image (with its
/// interval) and the codebook's usage on them (codes used, perplexity).
enum TokenizerEvaluation {
    static func record(
        _ family: MAGEFamily, test: LabeledImages, indices: [Int], size: Int, settings: EvaluateSpec, rng: Philox,
        budget: JSONValue
    ) -> (JSONValue, [Tensor<Float>]) {
        var psnr: [Double] = []
        var counts = [Int](repeating: 0, count: family.model.config.codebookSize)
        var truth: [Tensor<Float>] = []
        var rebuilt: [Tensor<Float>] = []
        for start in stride(from: 0, to: indices.count, by: 256) {
            let x = test.tensor(Array(indices[start..<min(indices.count, start + 256)]), size: size)
            let (y, tokens) = GradMode.withoutGrad {
                let tokens = family.model.tokenize(x)
                return (family.model.render(tokens).clamped(0, 1), tokens)
            }
            psnr += Self.psnr(y, x)
            for t in tokens.joined() { counts[t] += 1 }
            if truth.isEmpty {
                let k = min(x.shape[0], settings.gridSamples)
                truth = [x.slice(axis: 0, 0..<k)]
                rebuilt = [y.slice(axis: 0, 0..<k)]
            }
        }
        let estimate = Statistics.mean(psnr, resamples: settings.bootstrap, rng: rng.split("bootstrap"))
        let record = JSONValue.object(
            JSONObject([
                ("stage", .string("tokenizer")),
                ("images", .integer(indices.count)),
                ("reconstruction_psnr", estimate.json),
                (
                    "codebook",
                    .object(
                        JSONObject([
                            ("size", .integer(counts.count)),
                            ("used", .integer(counts.filter { $0 > 0 }.count)),
                            ("perplexity", .number(VectorQuantizer<Float>.perplexity(counts))),
                        ]))
                ),
                ("budget", budget),
            ]))
        return (record, [truth[0], rebuilt[0]])
    }

    /// PSNR of each whole image of `y` against `x`.
    static func psnr(_ y: Tensor<Float>, _ x: Tensor<Float>) -> [Double] {
        let per = x.count / max(1, x.shape[0])
        return (0..<x.shape[0]).map { i in
            var sum = 0.0
            for j in (i * per)..<((i + 1) * per) {
                let d = Double(y.storage[j] - x.storage[j])
                sum += d * d
            }
            return Evaluation.psnr(sum / Double(per))
        }
    }
}
