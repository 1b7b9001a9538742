import Foundation
import Testing
import LetheTensor
@testable import LetheModels

@Suite struct ReferenceModelTests {
    static func smallMAE() -> MAEConfig {
        var c = MAEConfig()
        c.imageSize = 8
        c.patchSize = 2
        c.width = 16
        c.depth = 1
        c.heads = 2
        c.decoderWidth = 8
        c.decoderDepth = 1
        c.decoderHeads = 2
        return c
    }

    @Test func maeShapesPathsAndPatchify() {
        var rng = Philox(seed: 0)
        let model = MAE<Float>(Self.smallMAE(), rng: &rng)
        let paths = model.namedParameters().map(\.path)
        #expect(
            paths.prefix(5) == [
                "pos_embed", "mask_token", "decoder_pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
            ])
        #expect(
            paths.contains("blocks.0.attn.qkv.weight") && paths.contains("decoder_blocks.0.mlp.fc2.bias")
                && paths.contains("decoder_pred.weight"))
        #expect(model.posEmbed.requiresGrad == false)
        let x = Tensor<Float>.randn([2, 1, 8, 8], rng: &rng)
        #expect(model.unpatchify(model.patchify(x)).storage == x.storage)
        let visible = [[0, 1, 2, 4, 7, 9, 12, 15], [3, 5, 6, 8, 10, 11, 13, 14]]
        #expect(model.encode(x, visible: visible).shape == [2, 8, 16])
        #expect(model.decode(model.encode(x, visible: visible), visible: visible).shape == [2, 16, 4])
    }

    @Test func maeRestoresMaskTokensToTheirPatches() {
        var rng = Philox(seed: 1)
        let model = MAE<Double>(Self.smallMAE(), rng: &rng)
        let x = Tensor<Double>.randn([1, 1, 8, 8], rng: &rng)
        // Same visible set listed in two orders: the decoder must not care.
        let a = model.decode(model.encode(x, visible: [[0, 5, 10, 15]]), visible: [[0, 5, 10, 15]])
        let b = model.decode(model.encode(x, visible: [[15, 10, 5, 0]]), visible: [[15, 10, 5, 0]])
        for (u, v) in zip(a.storage, b.storage) { #expect(abs(u - v) < 1e-9) }
    }

    @Test func vqganShapesAndPaths() {
        var rng = Philox(seed: 2)
        var c = VQGANConfig()
        c.imageSize = 16
        c.levels = [8, 16]
        c.codebookSize = 16
        c.codebookDim = 4
        c.groups = 4
        let model = VQGAN<Float>(c, rng: &rng)
        let paths = model.namedParameters().map(\.path)
        #expect(
            paths.contains("encoder.down.1.downsample.weight") && paths.contains("quantize.embedding.weight")
                && paths.contains("decoder.conv_out.bias"))
        let x = Tensor<Float>.randn([2, 1, 16, 16], rng: &rng)
        let z = model.encoder(x)
        #expect(z.shape == [2, 4, 4, 4])
        let (q, idx, _) = model.quantize(z)
        #expect(q.shape == z.shape && idx.count == 32)
        #expect(model.decoder(q).shape == [2, 1, 16, 16])
    }

    @Test func unetShapesPathsAndEncoderSplit() {
        var rng = Philox(seed: 3)
        var c = DiffusionConfig()
        c.imageSize = 8
        c.levels = [8, 16]
        c.timeEmbedding = 16
        c.groups = 4
        let model = UNet<Float>(c, rng: &rng)
        let paths = model.namedParameters().map(\.path)
        #expect(
            paths.contains("time_embed.0.weight") && paths.contains("down.1.res.skip.weight")
                && paths.contains("up.0.res.conv2.bias"))
        // The up path runs bottom to top: every level but the top one ends in an upsampling conv.
        #expect(paths.contains("up.0.upsample.weight") && !paths.contains("up.1.upsample.weight"))
        let xt = Tensor<Float>.randn([2, 1, 8, 8], rng: &rng)
        let cond = Tensor<Float>.randn([2, 1, 8, 8], rng: &rng)
        let emb = model.timestepEmbedding([3, 50])
        let features = model.encode(xt, condition: cond, emb: emb)
        #expect(features.map(\.shape) == [[2, 8, 8, 8], [2, 16, 4, 4], [2, 16, 4, 4]])
        #expect(model.decode(features, emb: emb).shape == [2, 1, 8, 8])
        let encoderPaths = Set(model.encoderParameters.map(\.path))
        #expect(encoderPaths.allSatisfy { !$0.hasPrefix("up.") } && encoderPaths.contains("mid.conv1.weight"))
    }

    @Test func everyModelsLossFallsInAShortRun() {
        var rng = Philox(seed: 4)
        // Smooth images (sums of a few sinusoids): learnable structure, unlike white noise.
        let x = Tensor<Float>(
            (0..<256).map { (i: Int) -> Float in
                let b = Double(i / 64)
                let row = Double((i / 8) % 8)
                let col = Double(i % 8)
                let wave: Double = 0.5 * sin((col + b) * 0.7) + 0.5 * cos(row * (b + 1) * 0.4)
                return Float(wave)
            }, shape: [4, 1, 8, 8])
        let mae = MAE<Float>(Self.smallMAE(), rng: &rng)
        let visible = Array(repeating: [0, 1, 2, 3, 4, 7, 8, 11, 12, 13, 14, 15], count: 4)
        var c = VQGANConfig()
        c.imageSize = 8
        c.levels = [8]
        c.codebookSize = 8
        c.codebookDim = 4
        c.groups = 4
        let vq = VQGAN<Float>(c, rng: &rng)
        func trains(_ params: [Tensor<Float>], _ loss: () -> Tensor<Float>) -> Bool {
            var adam = Adam(params, lr: 3e-3)
            var first: Float = 0
            var last: Float = 0
            for step in 0..<40 {
                adam.zeroGrad()
                let l = loss()
                if step == 0 { first = l.scalar }
                last = l.scalar
                l.backward()
                adam.step()
            }
            return last < first * 0.8
        }
        #expect(trains(mae.parameters) { mae.reconstructionLoss(x, visible: visible) })
        #expect(trains(vq.parameters) { vq.reconstructionLoss(masked: x, target: x) })
    }
}
