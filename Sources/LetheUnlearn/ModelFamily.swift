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
}

extension ModelFamily {
    func noiseEmbedding(
        forget: Tensor<Float>, noise: Tensor<Float>, hidden: [Bool], target: UnlearnSpec.Noise.Target?,
        rng: inout Philox
    ) -> [Tensor<Float>] {
        embed(noise, hidden: hidden, rng: &rng)
    }

    func holeCodes(_ x: Tensor<Float>, hidden: [Bool]) -> [[Int]]? { nil }

    func noisyPrediction(forget: Tensor<Float>, noise: Tensor<Float>, hidden: [Bool], rng: inout Philox)
        -> TaskPrediction
    {
        var p = taskPrediction(forget, hidden: hidden, rng: &rng)
        p.label = p.labelLike(noise)
        return p
    }
}

/// A prediction, its label, and which of its elements the loss counts (`weight` broadcasts against
/// the prediction; nil: all), plus a loss term of the model's own (the VQ loss).
struct TaskPrediction {
    var prediction: Tensor<Float>
    var label: Tensor<Float>
    var weight: Tensor<Float>?
    var auxiliary: Tensor<Float>?
    /// Maps an image batch into label space (MAE: patches); identity otherwise.
    var labelLike: (Tensor<Float>) -> Tensor<Float> = { $0 }

    /// Mean squared error over the counted elements, plus the auxiliary term unless `auxiliary` is
    /// false (MAX LOSS ascends the I2I term alone, never the VQ loss).
    func loss(label override: Tensor<Float>? = nil, auxiliary includeAuxiliary: Bool = true) -> Tensor<Float> {
        let diff = (prediction - (override ?? label)).square()
        var l: Tensor<Float>
        if let weight {
            let counted = Float(weight.storage.reduce(0, +)) * Float(prediction.count / weight.count)
            l = (diff * weight).sum() / max(1, counted)
        } else {
            l = diff.mean()
        }
        if includeAuxiliary, let auxiliary { l = l + auxiliary }
        return l
    }
}

enum Families {
    /// The model a resolved spec describes. The schema fills the section of the chosen architecture,
    /// so a missing one is a defect, reported as such.
    static func make(
        model: ModelSpec, imageSize: Int, channels: Int, vqganEmbedding: UnlearnSpec.VQGANEmbedding? = nil,
        rng: inout Philox
    ) -> any ModelFamily {
        switch model.architecture {
        case .vqgan:
            guard let p = model.vqgan else { preconditionFailure("model.vqgan is filled by the schema") }
            switch p.generator {
            case .autoencoder: break  // the autoencoder completes the hole itself (the only generator so far)
            }
            var c = VQGANConfig()
            c.imageSize = imageSize
            c.channels = channels
            c.levels = p.channels
            c.codebookSize = p.codebookSize
            c.codebookDim = p.codebookDim
            c.commitment = p.commitment
            return VQGANFamily(model: VQGAN(c, rng: &rng), embedding: vqganEmbedding ?? .continuous)
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
            prediction: model.decode(latent, visible: vis), label: model.patchify(x),
            weight: weight, labelLike: { [model] in model.patchify($0) })
    }

    func complete(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> Tensor<Float> {
        let vis = visible(hidden, batch: x.shape[0])
        let prediction = model.unpatchify(model.decode(embed(x, hidden: hidden, rng: &rng)[0], visible: vis))
        return Families.composite(x, prediction.clamped(0, 1), hidden: hidden)
    }
}

/// VQ-GAN autoencoder: reconstruct the whole image from T(x).
struct VQGANFamily: ModelFamily {
    let model: VQGAN<Float>
    /// Where the unlearning objective compares the encoder's output (`unlearn.vqgan_embedding`).
    var embedding: UnlearnSpec.VQGANEmbedding = .continuous
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

    /// The code of every latent cell whose image block holds a hidden pixel.
    func holeCodes(_ x: Tensor<Float>, hidden: [Bool]) -> [[Int]]? {
        let (_, indices, _) = model.quantize(model.encoder(MaskTransform.apply(x, hidden: [hidden])))
        let size = x.shape[2]
        let cells = indices.count / x.shape[0]
        let grid = Int(Double(cells).squareRoot().rounded())
        let f = size / grid
        let touched = (0..<cells).filter { c in
            let (cy, cx) = (c / grid, c % grid)
            return (0..<f).contains { dy in (0..<f).contains { dx in hidden[(cy * f + dy) * size + cx * f + dx] } }
        }
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
