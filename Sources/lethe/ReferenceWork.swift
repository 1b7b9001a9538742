import LetheModels
import LetheTensor

/// The reference models' other work for `lethe bench`, beside the unlearning steps: one pretraining
/// step of each (the whole model, or MAGE's transformer, trained on its own loss with Adam lr 1e-4,
/// batch 32), and the completions of an evaluation (batch 32, no gradient; the diffusion model's 100
/// DDPM steps on a batch of 8, which takes seconds). `bench/torch/bench_steps.py` does the same work in
/// PyTorch.
extension ReferenceSteps {
    /// Every reference model's pretraining step.
    static var pretraining: [(name: String, make: () -> Step)] {
        [
            ("MAE", maePretrain), ("VQ autoencoder", vqAutoencoderPretrain), ("MAGE", magePretrain),
            ("diffusion", diffusionPretrain),
        ]
    }

    /// Every reference model's batch of completions.
    static var completions: [(name: String, make: () -> Step)] {
        [
            ("MAE", maeCompletion), ("VQ autoencoder", vqAutoencoderCompletion), ("MAGE", mageCompletion),
            ("diffusion", diffusionCompletion),
        ]
    }

    /// The batch of the DDPM completions: 100 UNet passes make a batch of 32 take many seconds.
    static let ddpmBatch = 8

    /// The patches (of the 8x8 grid) the centre crop hides, and the others, per image.
    static let holePatches = Set((2..<6).flatMap { r in (2..<6).map { r * 8 + $0 } })
    static var visiblePatches: [[Int]] {
        Array(repeating: (0..<64).filter { !holePatches.contains($0) }, count: batch)
    }
    static var hiddenPatches: [[Int]] { Array(repeating: holePatches.sorted(), count: batch) }

    /// A model with PyTorch's initialisation from the "init" stream, and the generator for the data.
    static func model<M: Module<Float>>(_ make: (inout Philox) -> M) -> (model: M, rng: Philox) {
        let rng = Philox(seed: 0)
        var initial = rng.split("init")
        return (make(&initial), rng.split("data"))
    }

    /// Adam over every trainable parameter of `model` (buffers such as the MAE's positions stay fixed).
    static func adam(_ model: Module<Float>) -> Adam<Float> {
        model.setTrainable(true)
        return Adam(model.parameters.filter(\.requiresGrad), lr: 1e-4)
    }

    /// MAE's pretraining: a random 75% of the patches hidden (the same 48 for every image here), the
    /// hidden patches reconstructed.
    static func maePretrain() -> Step {
        var (mae, rng) = model { MAE<Float>(MAEConfig(), rng: &$0) }
        let x = images(&rng)
        let visible = Array(repeating: (0..<64).filter { $0 % 4 == 0 }, count: batch)
        var adam = adam(mae)
        return Step(name: "MAE", parameters: mae.parameterCount) {
            adam.zeroGrad()
            mae.reconstructionLoss(x, visible: visible).backward()
            adam.step()
        }
    }

    /// The VQ autoencoder's pretraining: the whole image from the masked one, plus the VQ loss.
    static func vqAutoencoderPretrain() -> Step {
        var (vq, rng) = model { VQGAN<Float>(VQGANConfig(), rng: &$0) }
        let x = images(&rng)
        let masked = x * cropMask()
        var adam = adam(vq)
        return Step(name: "VQ autoencoder", parameters: vq.parameterCount) {
            adam.zeroGrad()
            vq.reconstructionLoss(masked: masked, target: x).backward()
            adam.step()
        }
    }

    /// MAGE's transformer stage: the frozen tokenizer's tokens, the hole's tokens dropped from the
    /// encoder, cross-entropy of the decoder's logits at the hole against the tokens.
    static func magePretrain() -> Step {
        var (mage, rng) = model { MAGE<Float>(MAGEConfig(), rng: &$0) }
        let x = images(&rng)
        mage.setTrainable(false)
        for p in mage.transformerParameters { p.tensor.requiresGrad = true }
        var adam = Adam(mage.transformerParameters.map(\.tensor), lr: 1e-4)
        let (visible, hidden) = (visiblePatches, hiddenPatches)
        return Step(name: "MAGE", parameters: mage.parameterCount) {
            adam.zeroGrad()
            let tokens = mage.tokenize(x)
            let logits = TokenOrder.gather(
                mage.decode(mage.encode(tokens: tokens, visible: visible), visible: visible), hidden)
            let labels = zip(tokens, hidden).flatMap { t, h in h.map { t[$0] } }
            logits.reshaped([labels.count, mage.config.codebookSize]).crossEntropy(labels).backward()
            adam.step()
        }
    }

    /// The diffusion model's pretraining: x_t in the hole, the image elsewhere, the masked image as the
    /// condition; the predicted noise against the noise, in the hole.
    static func diffusionPretrain() -> Step {
        var (unet, rng) = model { UNet<Float>(DiffusionConfig(), rng: &$0) }
        let hole = 1 - cropMask()
        let (y0, eps) = (images(&rng) * 2 - 1, Tensor<Float>.randn([batch, 1, 32, 32], rng: &rng))
        let t = (0..<batch).map { _ in rng.int(below: 100) }
        let yt = DiffusionProcess(unet.config).qSample(y0, t: t, eps: eps)
        let (input, condition) = (yt * hole + y0 * (1 - hole), y0 * (1 - hole))
        var adam = adam(unet)
        return Step(name: "diffusion", parameters: unet.parameterCount) {
            adam.zeroGrad()
            ((unet(input, condition: condition, t: t) - eps) * hole).square().mean().backward()
            adam.step()
        }
    }

    /// MAE completions: the masked image's visible patches encoded, every patch decoded.
    static func maeCompletion() -> Step {
        var (mae, rng) = model { MAE<Float>(MAEConfig(), rng: &$0) }
        let masked = images(&rng) * cropMask()
        let visible = visiblePatches
        return Step(name: "MAE", parameters: mae.parameterCount) {
            GradMode.withoutGrad {
                _ = mae.unpatchify(mae.decode(mae.encode(masked, visible: visible), visible: visible))
            }
        }
    }

    /// VQ autoencoder completions: encoder, nearest codes, decoder.
    static func vqAutoencoderCompletion() -> Step {
        var (vq, rng) = model { VQGAN<Float>(VQGANConfig(), rng: &$0) }
        let masked = images(&rng) * cropMask()
        return Step(name: "VQ autoencoder", parameters: vq.parameterCount) {
            GradMode.withoutGrad { _ = vq.decoder(vq.quantize(vq.encoder(masked)).quantized) }
        }
    }

    /// MAGE completions in one pass: tokens of the masked image, the hole's tokens predicted (argmax)
    /// from the others, the tokenizer's decoder rendering the grid.
    static func mageCompletion() -> Step {
        var (mage, rng) = model { MAGE<Float>(MAGEConfig(), rng: &$0) }
        let masked = images(&rng) * cropMask()
        let (visible, hidden) = (visiblePatches, hiddenPatches)
        let k = mage.config.codebookSize
        return Step(name: "MAGE", parameters: mage.parameterCount) {
            GradMode.withoutGrad {
                var tokens = mage.tokenize(masked)
                let logits = mage.decode(mage.encode(tokens: tokens, visible: visible), visible: visible).storage
                for b in 0..<batch {
                    for p in hidden[b] {
                        let row = logits[((b * 64 + p) * k)..<((b * 64 + p + 1) * k)]
                        tokens[b][p] = row.indices.max { row[$0] < row[$1] }! - row.startIndex
                    }
                }
                _ = mage.render(tokens)
            }
        }
    }

    /// Diffusion completions: 100 DDPM steps from pure noise, the visible context pasted back into the
    /// UNet's input at every step; a batch of `ddpmBatch`.
    static func diffusionCompletion() -> Step {
        var (unet, rng) = model { UNet<Float>(DiffusionConfig(), rng: &$0) }
        let hole = 1 - cropMask()
        let y0 = Tensor<Float>.uniform([ddpmBatch, 1, 32, 32], 0, 1, rng: &rng) * 2 - 1
        let condition = y0 * (1 - hole)
        let process = DiffusionProcess(unet.config)
        let schedule = process.schedule(.ddpm)
        return Step(name: "diffusion", parameters: unet.parameterCount, images: ddpmBatch) {
            GradMode.withoutGrad {
                var y = Tensor<Float>.randn([ddpmBatch, 1, 32, 32], rng: &rng)
                for (k, t) in schedule.enumerated() {
                    let eps = unet(
                        y * hole + y0 * (1 - hole), condition: condition, t: Array(repeating: t, count: ddpmBatch))
                    let previous = k + 1 < schedule.count ? schedule[k + 1] : -1
                    y = process.step(y, predictedNoise: eps, t: t, previous: previous, sampler: .ddpm, rng: &rng)
                }
            }
        }
    }
}
