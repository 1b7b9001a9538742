import LetheRuns
import Foundation
import LetheData
import LetheJSON
import LetheModels
import LetheSpec
import LetheTensor

/// A model family as the executor drives it: build from the resolved spec, the training loss of the
/// I2I task, and completion of masked images. Images are (N, C, S, S) in [0, 1]; `hidden` is one
/// mask for the whole batch (true = hidden pixel).
protocol ModelFamily {
    var module: Module<Float> { get }
    /// The encoder E: what the unlearning objective trains (the decoder stays frozen).
    var encoderParameters: [Tensor<Float>] { get }
    func trainingLoss(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> Tensor<Float>
    func complete(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> Tensor<Float>
    /// E(T(x)): the encoder's embedding of the masked images, as one or more feature maps. `rng` draws
    /// what the family needs (a timestep and noise for diffusion); callers pass equal copies to the
    /// student and the teacher so both see the same draws.
    func embed(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> [Tensor<Float>]
    /// The forget target of "ours", called on the frozen teacher: its embedding of the noise n through
    /// the same mask T. MAE and VQ-GAN embed T(n). Diffusion keeps the forget image's context and puts
    /// the noise in the hole: as x_t itself at the student's timestep (`target: xt`, the authors'), or
    /// as a clean image diffused to x_t (`x0`). `rng` is a copy of the student's forget draws.
    func noiseEmbedding(
        forget: Tensor<Float>, noise: Tensor<Float>, hidden: [Bool], target: UnlearnSpec.Noise.Target?,
        rng: inout Philox
    ) -> [Tensor<Float>]
    /// The codebook index of every latent cell the hole touches, per image (VQ-GAN); nil for a family
    /// without codes.
    func holeCodes(_ x: Tensor<Float>, hidden: [Bool]) -> [[Int]]?
    /// The whole model's output for T(x) and the label its I2I training regresses it onto: what the
    /// baselines (which train the whole model) push towards or away from.
    func taskPrediction(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> TaskPrediction
    /// NOISY LABEL's forget term: the prediction for T(x_f) with noise as its label.
    func noisyPrediction(forget: Tensor<Float>, noise: Tensor<Float>, hidden: [Bool], rng: inout Philox)
        -> TaskPrediction
    /// What pretraining trains (default: every trainable parameter; MAGE: its stage's part).
    var stageParameters: [Tensor<Float>] { get }
    /// The part of the model a pretraining checkpoint holds, and the prefix of its paths.
    var checkpointPrefix: (module: Module<Float>, prefix: String) { get }
    /// The part a pretraining stage loads (frozen) from its own dependency before it trains (MAGE's
    /// transformer stage: the tokenizer); nil for a family that pretrains from scratch.
    var pretrainingOrigin: (module: Module<Float>, prefix: String)? { get }
    /// Parts no unlearning method trains, the whole-model baselines included (MAGE's tokenizer).
    var fixedModules: [Module<Float>] { get }
    /// What training changes outside the parameters (a codebook set from data, codes' usage), saved
    /// with the state a run resumes from, by name.
    var trainingState: [String: [Int]] { get }
    func restoreTrainingState(_ state: [String: [Int]]) throws
}

extension ModelFamily {
    func noiseEmbedding(
        forget: Tensor<Float>, noise: Tensor<Float>, hidden: [Bool], target: UnlearnSpec.Noise.Target?,
        rng: inout Philox
    ) -> [Tensor<Float>] {
        embed(noise, hidden: hidden, rng: &rng)
    }

    func holeCodes(_ x: Tensor<Float>, hidden: [Bool]) -> [[Int]]? { nil }

    var stageParameters: [Tensor<Float>] { module.parameters.filter(\.requiresGrad) }
    var checkpointPrefix: (module: Module<Float>, prefix: String) { (module, "") }
    var pretrainingOrigin: (module: Module<Float>, prefix: String)? { nil }
    var fixedModules: [Module<Float>] { [] }
    var trainingState: [String: [Int]] { [:] }
    func restoreTrainingState(_ state: [String: [Int]]) throws {}

    func noisyPrediction(forget: Tensor<Float>, noise: Tensor<Float>, hidden: [Bool], rng: inout Philox)
        -> TaskPrediction
    {
        var p = taskPrediction(forget, hidden: hidden, rng: &rng)
        p.label = p.labelLike(noise)
        return p
    }
}

/// A prediction, its label, and which of its elements the loss counts (`weight` broadcasts against
/// the prediction; nil: all), plus a loss term of the model's own (the VQ loss). A label is values
/// (mean squared error) or classes (cross-entropy of the prediction's rows of logits: MAGE's tokens).
struct TaskPrediction {
    enum Label {
        case values(Tensor<Float>)
        case classes([Int])
    }

    var prediction: Tensor<Float>
    var label: Label
    var weight: Tensor<Float>?
    var auxiliary: Tensor<Float>?
    /// Maps an image batch into label space (MAE: patches); identity otherwise.
    var labelLike: (Tensor<Float>) -> Label = { .values($0) }

    init(
        prediction: Tensor<Float>, label: Label, weight: Tensor<Float>? = nil, auxiliary: Tensor<Float>? = nil,
        labelLike: @escaping (Tensor<Float>) -> Label = { .values($0) }
    ) {
        self.prediction = prediction
        self.label = label
        self.weight = weight
        self.auxiliary = auxiliary
        self.labelLike = labelLike
    }

    init(prediction: Tensor<Float>, label: Tensor<Float>, weight: Tensor<Float>? = nil, auxiliary: Tensor<Float>? = nil)
    {
        self.init(prediction: prediction, label: .values(label), weight: weight, auxiliary: auxiliary)
    }

    /// This prediction as a label to distil to (a frozen teacher's output): its values, or the most
    /// likely class of each row.
    var asLabel: Label {
        switch label {
        case .values: return .values(prediction.detached())
        case .classes:
            let k = prediction.shape[prediction.rank - 1]
            let p = prediction.storage
            return .classes(
                (0..<(prediction.count / k)).map { r in (0..<k).max { p[r * k + $0] < p[r * k + $1] }! })
        }
    }

    /// Mean squared error over the counted elements, or cross-entropy over the rows, plus the
    /// auxiliary term unless `auxiliary` is false (MAX LOSS ascends the I2I term alone, never the VQ loss).
    func loss(label override: Label? = nil, auxiliary includeAuxiliary: Bool = true) -> Tensor<Float> {
        var l: Tensor<Float>
        switch override ?? label {
        case .classes(let targets):
            l = prediction.crossEntropy(targets)
        case .values(let target):
            let diff = (prediction - target).square()
            if let weight {
                let counted = Float(weight.storage.reduce(0, +)) * Float(prediction.count / weight.count)
                l = (diff * weight).sum() / max(1, counted)
            } else {
                l = diff.mean()
            }
        }
        if includeAuxiliary, let auxiliary { l = l + auxiliary }
        return l
    }
}

enum Families {
    /// The model a resolved spec describes. The schema fills the section of the chosen architecture,
    /// so a missing one is a defect, reported as such.
    static func make(
        model: ModelSpec, imageSize: Int, channels: Int, vqEmbedding: UnlearnSpec.VQEmbedding? = nil,
        stage: TrainSpec.Stage? = nil, rng: inout Philox
    ) -> any ModelFamily {
        switch model.architecture {
        case .vqAutoencoder:
            guard let p = model.vqAutoencoder else {
                preconditionFailure("model.vq_autoencoder is filled by the schema")
            }
            let c = vqConfig(p, imageSize: imageSize, channels: channels)
            return VQAutoencoderFamily(model: VQGAN(c, rng: &rng), embedding: vqEmbedding ?? .continuous)
        case .mage:
            guard let p = model.mage else { preconditionFailure("model.mage is filled by the schema") }
            var c = MAGEConfig()
            c.imageSize = imageSize
            c.channels = channels
            c.tokenizer = vqConfig(p.tokenizer, imageSize: imageSize, channels: channels)
            c.width = p.width
            c.depth = p.depth
            c.heads = p.heads
            c.mlpRatio = p.mlpRatio
            c.decoderWidth = p.decoderWidth
            c.decoderDepth = p.decoderDepth
            c.decoderHeads = p.decoderHeads
            return MAGEFamily(model: MAGE(c, rng: &rng), settings: p, stage: stage)
        case .diffusion:
            guard let p = model.diffusion else { preconditionFailure("model.diffusion is filled by the schema") }
            var c = DiffusionConfig()
            c.imageSize = imageSize
            c.channels = channels
            c.levels = p.channels
            c.timeEmbedding = p.timeEmbedding
            c.timesteps = p.timesteps
            c.betaStart = p.betaStart
            c.betaEnd = p.betaEnd
            c.schedule = diffusionSchedule(p.betaSchedule)
            return DiffusionFamily(model: UNet(c, rng: &rng), sampler: p.sampler, samplingSteps: p.samplingSteps)
        case .mae:
            guard let p = model.mae else { preconditionFailure("model.mae is filled by the schema") }
            var c = MAEConfig()
            c.imageSize = imageSize
            c.channels = channels
            c.patchSize = p.patchSize
            c.width = p.width
            c.depth = p.depth
            c.heads = p.heads
            c.mlpRatio = p.mlpRatio
            c.decoderWidth = p.decoderWidth
            c.decoderDepth = p.decoderDepth
            c.decoderHeads = p.decoderHeads
            return MAEFamily(model: MAE(c, rng: &rng), pretrainMaskRatio: p.pretrainMaskRatio)
        }
    }

    static func vqConfig(_ p: ModelSpec.VQ, imageSize: Int, channels: Int) -> VQGANConfig {
        var c = VQGANConfig()
        c.imageSize = imageSize
        c.channels = channels
        c.levels = p.channels
        c.codebookSize = p.codebookSize
        c.codebookDim = p.codebookDim
        c.commitment = p.commitment
        return c
    }

    static func diffusionSchedule(_ s: ModelSpec.Diffusion.BetaSchedule) -> DiffusionProcess.Schedule {
        switch s {
        case .scaledLinear: return .scaledLinear
        case .linear: return .linear
        case .cosine: return .cosine
        }
    }

    /// The masked image plus the model's output in the hidden pixels only.
    static func composite(_ x: Tensor<Float>, _ output: Tensor<Float>, hidden: [Bool]) -> Tensor<Float> {
        let m = Tensor<Float>(hidden.map { $0 ? 1 : 0 }, shape: [1, 1, x.shape[2], x.shape[3]])
        return x * (1 - m) + output * m
    }
}

/// MAE: half the steps mask patches at random (MAE's pretraining), half use the task's mask T.
struct MAEFamily: ModelFamily {
    let model: MAE<Float>
    let pretrainMaskRatio: Double
    var module: Module<Float> { model }
    var encoderParameters: [Tensor<Float>] { model.encoderParameters.map(\.tensor) }

    /// E(T(x)): every hidden pixel is filled (0) before the patch embedding, so no hole pixel reaches
    /// the encoder through a patch that counts as visible.
    func embed(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> [Tensor<Float>] {
        [model.encode(MaskTransform.apply(x, hidden: [hidden]), visible: visible(hidden, batch: x.shape[0]))]
    }

    func visible(_ hidden: [Bool], batch: Int) -> [[Int]] {
        let c = model.config
        let hiddenPatches = Set(MaskTransform.hiddenPatches(hidden, size: c.imageSize, patch: c.patchSize))
        return Array(repeating: (0..<c.patches).filter { !hiddenPatches.contains($0) }, count: batch)
    }

    func trainingLoss(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> Tensor<Float> {
        let n = x.shape[0]
        let patches = model.config.patches
        if rng.uniform() < 0.5 {
            let keep = max(1, Int((Double(patches) * (1 - pretrainMaskRatio)).rounded()))
            let vis = (0..<n).map { _ in Array(rng.permutation(patches).prefix(keep)).sorted() }
            return model.reconstructionLoss(x, visible: vis)
        }
        return model.reconstructionLoss(
            MaskTransform.apply(x, hidden: [hidden]), target: x, visible: visible(hidden, batch: n))
    }

    /// The decoder's patches against the image's, counted on the hidden patches (MAE's loss).
    func taskPrediction(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> TaskPrediction {
        let vis = visible(hidden, batch: x.shape[0])
        let shown = Set(vis[0])
        let weight = Tensor<Float>(
            (0..<model.config.patches).map { shown.contains($0) ? 0 : 1 }, shape: [1, model.config.patches, 1])
        let latent = embed(x, hidden: hidden, rng: &rng)[0]
        return TaskPrediction(
            prediction: model.decode(latent, visible: vis), label: .values(model.patchify(x)),
            weight: weight, labelLike: { [model] in .values(model.patchify($0)) })
    }

    func complete(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> Tensor<Float> {
        let vis = visible(hidden, batch: x.shape[0])
        let prediction = model.unpatchify(model.decode(embed(x, hidden: hidden, rng: &rng)[0], visible: vis))
        return Families.composite(x, prediction.clamped(0, 1), hidden: hidden)
    }
}

/// The VQ autoencoder: reconstruct the whole image from T(x).
struct VQAutoencoderFamily: ModelFamily {
    let model: VQGAN<Float>
    /// Where the unlearning objective compares the encoder's output (`unlearn.vq_embedding`).
    var embedding: UnlearnSpec.VQEmbedding = .continuous
    var module: Module<Float> { model }
    var encoderParameters: [Tensor<Float>] { model.encoderParameters.map(\.tensor) }

    /// E(T(x)): the encoder's output before quantisation, or the quantised latent with the
    /// straight-through gradient (`quantized`).
    func embed(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> [Tensor<Float>] {
        let z = model.encoder(MaskTransform.apply(x, hidden: [hidden]))
        switch embedding {
        case .continuous: return [z]
        case .quantized: return [model.quantize(z).quantized]
        }
    }

    var trainingState: [String: [Int]] { ["codebook_initialized": [model.quantize.initializedFromData ? 1 : 0]] }
    func restoreTrainingState(_ state: [String: [Int]]) throws {
        model.quantize.initializedFromData = state["codebook_initialized"] == [1]
    }

    /// The code of every latent cell whose image block holds a hidden pixel.
    func holeCodes(_ x: Tensor<Float>, hidden: [Bool]) -> [[Int]]? {
        let (_, indices, _) = model.quantize(model.encoder(MaskTransform.apply(x, hidden: [hidden])))
        let cells = indices.count / x.shape[0]
        let touched = MaskTransform.touchedPatches(
            hidden, size: x.shape[2], patch: x.shape[2] / model.config.latentSize)
        return (0..<x.shape[0]).map { b in touched.map { indices[b * cells + $0] } }
    }

    func trainingLoss(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> Tensor<Float> {
        let masked = MaskTransform.apply(x, hidden: [hidden])
        if !model.quantize.initializedFromData {
            GradMode.withoutGrad { model.quantize.initializeFromData(model.encoder(masked), rng: &rng) }
        }
        return model.reconstructionLoss(masked: masked, target: x)
    }

    /// The decoded image against the whole image, plus the VQ loss (its training loss).
    func taskPrediction(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> TaskPrediction {
        let (q, _, vq) = model.quantize(model.encoder(MaskTransform.apply(x, hidden: [hidden])))
        return TaskPrediction(prediction: model.decoder(q), label: x, weight: nil, auxiliary: vq)
    }

    func complete(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> Tensor<Float> {
        let (q, _, _) = model.quantize(model.encoder(MaskTransform.apply(x, hidden: [hidden])))
        return Families.composite(x, model.decoder(q).clamped(0, 1), hidden: hidden)
    }
}

/// Palette-style inpainting DDPM in [-1, 1]: noise only in the hole, the visible context kept, the
/// loss on the hole's noise. The process itself (schedule, q-sample, samplers) is LetheModels'
/// `DiffusionProcess`.
struct DiffusionFamily: ModelFamily {
    let model: UNet<Float>
    let sampler: DiffusionProcess.Sampler
    var module: Module<Float> { model }
    var encoderParameters: [Tensor<Float>] { model.encoderParameters.map(\.tensor) }
    var process: DiffusionProcess { DiffusionProcess(model.config) }

    init(model: UNet<Float>, sampler: ModelSpec.Diffusion.Sampler, samplingSteps: Int) {
        self.model = model
        switch sampler {
        case .ddpm: self.sampler = .ddpm
        case .ddim: self.sampler = .ddim(steps: samplingSteps)
        }
    }

    /// The down path and middle block's feature maps at a random timestep, for x_t of the image with
    /// noise in the hole and the masked image as the condition.
    func embed(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> [Tensor<Float>] {
        let d = draw(x, hidden: hidden, rng: &rng)
        return model.encode(d.input, condition: d.condition, emb: model.timestepEmbedding(d.timesteps))
    }

    /// One training draw: the UNet's input (x_t in the hole, the image elsewhere), its condition (the
    /// masked image), a timestep per image, the noise and the hole mask.
    struct Draw {
        var input: Tensor<Float>
        var condition: Tensor<Float>
        var timesteps: [Int]
        var noise: Tensor<Float>
        var hole: Tensor<Float>
    }

    func draw(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> Draw {
        let n = x.shape[0]
        let process = process
        let m = holeMask(hidden, x)
        let y0 = x * 2 - 1
        let t = (0..<n).map { _ in rng.int(below: process.timesteps) }
        let eps = Tensor<Float>.randn(x.shape, rng: &rng)
        let yt = process.qSample(y0, t: t, eps: eps)
        return Draw(input: yt * m + y0 * (1 - m), condition: y0 * (1 - m), timesteps: t, noise: eps, hole: m)
    }

    func noiseEmbedding(
        forget: Tensor<Float>, noise: Tensor<Float>, hidden: [Bool], target: UnlearnSpec.Noise.Target?,
        rng: inout Philox
    ) -> [Tensor<Float>] {
        switch target ?? .xt {
        case .x0:
            return embed(Families.composite(forget, noise, hidden: hidden), hidden: hidden, rng: &rng)
        case .xt:
            // The same draws as the student's forget embedding (timestep and all), but the hole's x_t
            // is the noise itself, N(0, I) in the model's [-1, 1] space (the authors' Palette code).
            let d = draw(forget, hidden: hidden, rng: &rng)
            let input = noise * d.hole + d.input * (1 - d.hole)
            return model.encode(input, condition: d.condition, emb: model.timestepEmbedding(d.timesteps))
        }
    }

    /// Predicted noise against the drawn noise, counted in the hole (Palette's loss).
    func taskPrediction(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> TaskPrediction {
        let d = draw(x, hidden: hidden, rng: &rng)
        return TaskPrediction(
            prediction: model(d.input, condition: d.condition, t: d.timesteps), label: d.noise, weight: d.hole)
    }

    /// The authors' NOISY LABEL for Palette: pure noise in the hole as x_t, and that noise as the target.
    func noisyPrediction(forget: Tensor<Float>, noise: Tensor<Float>, hidden: [Bool], rng: inout Philox)
        -> TaskPrediction
    {
        let n = forget.shape[0]
        let m = holeMask(hidden, forget)
        let y0 = forget * 2 - 1
        let t = (0..<n).map { _ in rng.int(below: process.timesteps) }
        return TaskPrediction(
            prediction: model(noise * m + y0 * (1 - m), condition: y0 * (1 - m), t: t), label: noise, weight: m)
    }

    func holeMask(_ hidden: [Bool], _ x: Tensor<Float>) -> Tensor<Float> {
        Tensor<Float>(hidden.map { $0 ? 1 : 0 }, shape: [1, 1, x.shape[2], x.shape[3]])
    }

    func trainingLoss(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> Tensor<Float> {
        taskPrediction(x, hidden: hidden, rng: &rng).loss()
    }

    /// Completion: from pure noise, the sampler's reverse steps, each with the visible context pasted
    /// back into the UNet's input.
    func complete(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> Tensor<Float> {
        let n = x.shape[0]
        let process = process
        let m = holeMask(hidden, x)
        let y0 = x * 2 - 1
        let condition = y0 * (1 - m)
        var y = Tensor<Float>.randn(x.shape, rng: &rng)
        let schedule = process.schedule(sampler)
        for (k, t) in schedule.enumerated() {
            let input = y * m + y0 * (1 - m)
            let eps = model(input, condition: condition, t: Array(repeating: t, count: n))
            let previous = k + 1 < schedule.count ? schedule[k + 1] : -1
            y = process.step(y, predictedNoise: eps, t: t, previous: previous, sampler: sampler, rng: &rng)
        }
        return Families.composite(x, ((y + 1) / 2).clamped(0, 1), hidden: hidden)
    }
}
