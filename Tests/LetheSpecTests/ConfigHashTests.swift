import Foundation
import Testing
@testable import LetheSpec

/// The config hash is a function of meaning: rewrites that keep the meaning keep it, any change
/// of a value (or of an input file) changes it.
@Suite struct ConfigHashTests {
    static let base = """
        version: 1
        kind: pretrain
        name: base
        seed: 3
        data:
          dataset: image-folder
          root: data
          image_size: 32
        task:
          mask: outpaint
          ratio: 0.25
        model:
          architecture: mae
          mae:
            width: 64
        train:
          steps: 10
          optimizer:
            name: adam
            lr: 1e-4
        """

    static let sameMeaning: [(String, String)] = [
        (
            "comments",
            """
            # a comment
            version: 1   # trailing
            kind: pretrain
            name: base
            seed: 3
            data: {dataset: image-folder, root: data, image_size: 32}   # flow style
            task: {mask: outpaint, ratio: 0.25}
            model:
              architecture: mae
              mae: {width: 64}
            train: {steps: 10, optimizer: {name: adam, lr: 0.0001}}
            """
        ),
        (
            "key order and number spelling",
            """
            train:
              optimizer:
                lr: 1.0e-04
                name: adam
              steps: 10
            model:
              mae:
                width: 64
              architecture: mae
            task:
              ratio: 2.5e-1
              mask: outpaint
            data:
              image_size: 32
              root: ./data
              dataset: image-folder
            seed: 3
            kind: pretrain
            version: 1
            """
        ),
        (
            "defaults spelled out, labels changed",
            """
            version: 1
            kind: pretrain
            name: renamed
            description: the same run under another name
            seed: 3
            data:
              dataset: image-folder
              root: data
              image_size: 32
              per_class_limit: null
            task:
              mask: outpaint
              ratio: 0.25
            model:
              architecture: mae
              mae:
                width: 64
                patch_size: 4
                depth: 4
                heads: 4
                mlp_ratio: 4.0
                decoder_width: 64
                decoder_depth: 2
                decoder_heads: 4
                pretrain_mask_ratio: 0.75
            train:
              steps: 10
              batch_size: 32
              optimizer:
                name: adam
                lr: 1e-4
                betas: [0.9, 0.999]
                eps: 1e-8
                weight_decay: 0
              schedule: {kind: constant, warmup_steps: 0, min_lr: 0}
              grad_clip: ~
            evaluate:
              test_per_class: 100
            numerics: {mode: fast}
            output: {dir: elsewhere}
            """
        ),
    ]

    static let changedMeaning: [(String, String, String)] = [
        ("seed", "seed: 3", "seed: 4"),
        ("learning rate", "lr: 1e-4", "lr: 2e-4"),
        ("mask", "mask: outpaint", "mask: center_crop"),
        ("model width", "width: 64", "width: 32"),
        ("steps", "steps: 10", "steps: 11"),
        ("ratio", "ratio: 0.25", "ratio: 0.2500001"),
    ]

    @Test func rewritesThatKeepTheMeaningKeepTheHash() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        _ = try dir.imageFolder()
        let planner = Planner(workingDirectory: dir.path)
        let reference = try planner.plan(text: Self.base, in: dir).configHash
        for (what, text) in Self.sameMeaning {
            #expect(try planner.plan(text: text, in: dir).configHash == reference, "\(what)")
        }
    }

    @Test func anyChangeOfValueChangesTheHash() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        _ = try dir.imageFolder()
        let planner = Planner(workingDirectory: dir.path)
        let reference = try planner.plan(text: Self.base, in: dir).configHash
        var seen: Set<String> = [reference]
        for (what, from, to) in Self.changedMeaning {
            #expect(Self.base.contains(from))
            let hash = try planner.plan(text: Self.base.replacing(from, with: to), in: dir).configHash
            #expect(seen.insert(hash).inserted, "\(what) did not change the hash")
        }
    }

    @Test func differentInputFilesNeverShareAHash() throws {
        let a = try TempDir()
        let b = try TempDir()
        defer {
            a.remove()
            b.remove()
        }
        _ = try a.imageFolder(salt: 0)
        _ = try b.imageFolder(salt: 1)
        let ha = try Planner(workingDirectory: a.path).plan(text: Self.base, in: a)
        let hb = try Planner(workingDirectory: b.path).plan(text: Self.base, in: b)
        #expect(ha.configHash != hb.configHash)
        #expect(ha.inputs.first { $0.role == "data" }?.sha256 != hb.inputs.first { $0.role == "data" }?.sha256)
    }

    @Test func theSameContentElsewhereSharesTheHash() throws {
        let a = try TempDir()
        let b = try TempDir()
        defer {
            a.remove()
            b.remove()
        }
        _ = try a.imageFolder()
        _ = try b.imageFolder()
        let ha = try Planner(workingDirectory: a.path).plan(text: Self.base, in: a).configHash
        let hb = try Planner(workingDirectory: b.path).plan(text: Self.base, in: b).configHash
        #expect(ha == hb)
    }

    @Test func overridesAreValidatedAndChangeTheHash() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        _ = try dir.imageFolder()
        let planner = Planner(workingDirectory: dir.path)
        let reference = try planner.plan(text: Self.base, in: dir)
        let overridden = try planner.plan(
            text: Self.base, in: dir, overrides: [try Override(parsing: "train.optimizer.lr=2e-4")])
        let edited = try planner.plan(
            text: Self.base.replacing("lr: 1e-4", with: "lr: 2e-4"), in: dir, name: "edited.yaml")
        #expect(overridden.configHash != reference.configHash)
        #expect(overridden.configHash == edited.configHash)
        #expect {
            try planner.plan(text: Self.base, in: dir, overrides: [try Override(parsing: "train.optimizer.lr=-1")])
        } throws: { error in
            let d = (error as! SpecError).diagnostics
            return d.count == 1 && d[0].pointer == JSONPointer(["train", "optimizer", "lr"])
                && d[0].mark?.file == "--set train.optimizer.lr=-1"
        }
    }

    @Test func identityLeavesOutLabelsAndReplacesPathsByDigests() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        _ = try dir.imageFolder()
        let plan = try Planner(workingDirectory: dir.path).plan(text: Self.base, in: dir)
        let spec = plan.identity["spec"]!
        #expect(spec["name"] == nil)
        #expect(spec["output"] == nil)
        #expect(spec["data"]?["root"]?.stringValue?.hasPrefix("sha256:") == true)
        #expect(plan.identity["lethe"] == .string(LetheVersion.current))
        #expect(plan.resolved["data"]?["root"] == .string(dir.path + "/data"))
        #expect(plan.configHash == Digest.sha256(try CanonicalJSON.string(plan.identity)))
    }
}

/// The shipped configs' hashes, pinned: a change of the typed-spec boundary, of a default or of an
/// identity must not move them unless it is deliberate, and then this list says so. `before`: the
/// hashes until 2026-12-03; `hashes`: since the feature classifier's batch size, learning rate and
/// schedule entered the schema (`evaluate.classifier_*`, defaults equal to the values that had been
/// hard-coded), which puts them in every run's identity and in the classifier's. The classifier's
/// identity also gained `test_fraction`, for data sets that have one (Fashion-MNIST has none).
@Suite struct ShippedConfigHashTests {
    static let before: [String: String] = [
        "diffusion-max-loss.yaml": "2e5d06eaa73768ab4298d45bdb1b2ca4cc74e7516904a6e35d06e0880f7d8d41",
        "diffusion-noisy-label.yaml": "3e10469973fa58f7c6f56437f6149a8db39a257f33f721621266587170ce41b7",
        "diffusion-ours-proxy.yaml": "77dbbc74567fad1e913a2e619c98012e6bf9b555ea8aeed25e087bf02994bf5a",
        "diffusion-ours.yaml": "738e56163e46778b94d75bffe93e9b7e5e20e7923c35ce43d2be686a1ba09e48",
        "diffusion-pretrain.yaml": "d3b24a1f97b84b2188c26e3bbd9dd60b40e200456e3b4ab11bdda80ba2dc0872",
        "diffusion-random-encoder.yaml": "7bafcb3a11f4d1ca4629ccc012f25e888018cf4cf4a1cf7e3b27f7c198a1e032",
        "diffusion-retain-label.yaml": "e0136c67cbba186f5862f5efc2fd4d2bc0f8559eb7801a09c296ed41da99ec69",
        "mae-evaluate.yaml": "7ddd97926c884f9f102b0089da19d6da15eff26178b57f5f76ace0bd371927c4",
        "mae-max-loss.yaml": "e70f2d6f475d9a13e9b58f40e091317cbfb549fa52d041e3ea38d6950b723fea",
        "mae-noisy-label.yaml": "b345a3860b688c4e0fd382774e457ebea209b9ac7ccde423edc86ddf7ff639da",
        "mae-ours-proxy.yaml": "56a0d376a947da62e61c001f52221b79464f3adee9e04036e189a2fd562e7c68",
        "mae-ours.yaml": "b61dc4305dc8f774af86a2fc1a3b66abace6cae86aa1f93236c6c4661fa55c2f",
        "mae-pretrain.yaml": "bef6161ca3158fc44842eabf9cfe7931c02e01780434e89332a9bfb69dc8e9b8",
        "mae-random-encoder.yaml": "ad4e7959bd742abe7cfe06cc37c3b8b83a4dedffd5b4c4dae7a07e14f212a7bc",
        "mae-retain-label.yaml": "47689f5e524aaa68f9d01e9c1498afb61b6ab30a8d141426157e1af66eb1c559",
        "vqgan-max-loss.yaml": "88ed38f476f2b460500fdf1e6b358cbcb638ceb44a14e4821f204151adeb96ab",
        "vqgan-noisy-label.yaml": "17a1bb5b5d8d07c801bb2637a9ca93410e6bd73e5162205c8d13df47f92324b7",
        "vqgan-ours-proxy.yaml": "22014695cea7c4969e9fac3c96c944b5411a454da01215080ab887d046d8e11e",
        "vqgan-ours.yaml": "f3470a4a6ba34ece237a022a135e764f02abf2c9bccad21a305a4adb541792c3",
        "vqgan-pretrain.yaml": "12f3b0dc5bba4977bebfc819204928b512d6a4f1737734c538ee4aaba2f718bc",
        "vqgan-random-encoder.yaml": "5a714fded3e543d0e7610981865c469096078094d11f5053fbf5286c906e467a",
        "vqgan-retain-label.yaml": "6c2e2fbb48256355637bc7b3add107ff28511d57b092b506058c60f1f88571c6",
    ]
    static let hashes: [String: String] = [
        "diffusion-max-loss.yaml": "6579e7c0ef2c5d341f78acf26b703c7a29a80aeed77953a4f10be695e1fd44da",
        "diffusion-noisy-label.yaml": "3c2f57f77dd35c5812c03b76aeef1656f7c7f9a8692aa945174776218918ee8b",
        "diffusion-ours-proxy.yaml": "7637478d0cccfeac70b1b1afd4b96d932e8ca2be1af225f42c283d379060976c",
        "diffusion-ours.yaml": "4496602a3831f4a1fdd03e88dbb2d1d0b751832ab2ce2884b432685adaa638b4",
        "diffusion-pretrain.yaml": "9f1af36a88a72965c5922aaaa613e738697bac27fa5f5e4a4c92e8488fdd1b60",
        "diffusion-random-encoder.yaml": "84dfe7f30fa28952f792a50ea4b0243dfaf34737b0857fb75e77f35cc502fc54",
        "diffusion-retain-label.yaml": "8279843b42cfa215b605ccb0f6d8e8b169c9b9c24dee17e81b06e23a8a6df955",
        "mae-evaluate.yaml": "38b90da0cca3947d7dadb2ebcff76c32ae386bf4b9b02180c82ba61baf658f10",
        "mae-max-loss.yaml": "49b0b83a312de13fd7203b472f09d8ee5a9398701b2f82070f4efc70bbff0a31",
        "mae-noisy-label.yaml": "4463a8d1af2c2b6cbc7824a6ca83ba20695104d0a3767901f0c286c6b557c273",
        "mae-ours-proxy.yaml": "84910050cb736f89dc9fd3bd0f1ab492f1a206a33a943253c696d6e00a0b2684",
        "mae-ours.yaml": "312369ad54f116f1cb8d82582a57503256cdee894ad4f20320b329494b9055ea",
        "mae-pretrain.yaml": "457def2602ced0541054b72c6ebba4dab2bc054c327903e3ff4a750a5d7685ef",
        "mae-random-encoder.yaml": "5b076fe5ee49cfb8292f0e778948bce79be0cce162424ed4e3b62bce1c116c1d",
        "mae-retain-label.yaml": "56128306bab694612f4d5c855c0ca849863d35458789cb83ab3627f5a383cbfd",
        "vqgan-max-loss.yaml": "9af001a7f60f5067db635b61f07e95de39933567dbda4e6348744081980d3bb2",
        "vqgan-noisy-label.yaml": "7413592c2b28a24d4772eeadaba9cd74e82f45904273e153e68c8d082255c551",
        "vqgan-ours-proxy.yaml": "59da58877f67071fff17b2c3a40165a4d25caf2c736fdee55e79acdb76fbf1b8",
        "vqgan-ours.yaml": "e4924dd8c7c715b55db603b65b0ed63af26220a50eeddda5d89772490194c0a3",
        "vqgan-pretrain.yaml": "a420b7605cce3667f62c6a499c0da77ebd9d07d172884786b7c37b7ae0c76103",
        "vqgan-random-encoder.yaml": "38152f4b98a5fe0f413b579bc944cf50be34d6dda3e66898b7a44be200019f4d",
        "vqgan-retain-label.yaml": "b8e622f1b3ae259d5ebebe0adf23ab4c170febaf7142c22cda52cc6bdf882384",
    ]
    static let fashionClassifierBefore = "50ead0e68530910a636d181236382de6e91ee3e6d4d7952a7c6bba56b573669f"
    static let fashionClassifier = "c57533872ea22df334d8b59a5e73e79dd8a8ec8d46a8833c065b6c5a324e5f85"

    @Test func theDeliberateChangeMovedEveryHash() {
        #expect(Set(Self.before.keys) == Set(Self.hashes.keys))
        for (file, hash) in Self.hashes { #expect(Self.before[file] != hash, "\(file)") }
    }

    @Test func shippedConfigHashesAreUnchanged() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Repo.path("configs")).filter {
            $0.hasSuffix(".yaml")
        }.sorted()
        #expect(files == Self.hashes.keys.sorted(), "a config was added or removed: pin its hash here")
        for file in files {
            let plan = try Planner(workingDirectory: Repo.path(".")).plan(specPath: Repo.path("configs/" + file))
            #expect(plan.configHash == Self.hashes[file], "\(file)")
            if let classifier = plan.stages.first(where: { $0.name == "classifier" }) {
                #expect(classifier.configHash == Self.fashionClassifier, "\(file)")
            }
        }
    }
}

/// Stages that train on one split of the data and are measured on another must know the split.
@Suite struct SplitIdentityTests {
    func unlearn(_ fraction: Double, pretrainFraction: Double, dir: TempDir) throws -> Plan {
        try dir.write(
            "pre.yaml",
            """
            version: 1
            kind: pretrain
            data: {dataset: image-folder, root: data, test_fraction: \(pretrainFraction)}
            model: {architecture: mae}
            """)
        return try Planner(workingDirectory: dir.path).plan(
            text: """
                version: 1
                kind: unlearn
                data: {dataset: image-folder, root: data, test_fraction: \(fraction), forget: {classes: [0]}}
                model: {architecture: mae, pretrain: pre.yaml}
                unlearn: {method: ours}
                """, in: dir)
    }

    @Test func theClassifierIdentityIncludesTheTestSplit() throws {
        let dir = try TempDir()
        _ = try dir.imageFolder(classes: 3)
        let a = try unlearn(0.1, pretrainFraction: 0.1, dir: dir)
        let b = try unlearn(0.2, pretrainFraction: 0.2, dir: dir)
        let ca = a.stages.first { $0.name == "classifier" }?.configHash
        let cb = b.stages.first { $0.name == "classifier" }?.configHash
        #expect(ca != nil && ca != cb, "a classifier trained on one split must not be reused for another")
    }

    @Test func aPretrainStageOnAnotherSplitOfTheSameDataIsRefused() throws {
        let dir = try TempDir()
        _ = try dir.imageFolder(classes: 3)
        #expect { try unlearn(0.2, pretrainFraction: 0.1, dir: dir) } throws: { error in
            let d = (error as? SpecError)?.diagnostics ?? []
            return d.contains {
                $0.pointer.description == "/data/test_fraction"
                    && $0.message.contains("test_fraction 0.1, this spec with 0.2")
            }
        }
    }
}
