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
        ("comments", """
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
        """),
        ("key order and number spelling", """
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
        """),
        ("defaults spelled out, labels changed", """
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
        """),
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
        let a = try TempDir(), b = try TempDir()
        defer { a.remove(); b.remove() }
        _ = try a.imageFolder(salt: 0)
        _ = try b.imageFolder(salt: 1)
        let ha = try Planner(workingDirectory: a.path).plan(text: Self.base, in: a)
        let hb = try Planner(workingDirectory: b.path).plan(text: Self.base, in: b)
        #expect(ha.configHash != hb.configHash)
        #expect(ha.inputs.first { $0.role == "data" }?.sha256 != hb.inputs.first { $0.role == "data" }?.sha256)
    }

    @Test func theSameContentElsewhereSharesTheHash() throws {
        let a = try TempDir(), b = try TempDir()
        defer { a.remove(); b.remove() }
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
        let overridden = try planner.plan(text: Self.base, in: dir, overrides: [try Override(parsing: "train.optimizer.lr=2e-4")])
        let edited = try planner.plan(text: Self.base.replacing("lr: 1e-4", with: "lr: 2e-4"), in: dir, name: "edited.yaml")
        #expect(overridden.configHash != reference.configHash)
        #expect(overridden.configHash == edited.configHash)
        #expect {
            try planner.plan(text: Self.base, in: dir, overrides: [try Override(parsing: "train.optimizer.lr=-1")])
        } throws: { error in
            let d = (error as! SpecError).diagnostics
            return d.count == 1 && d[0].pointer == JSONPointer(["train", "optimizer", "lr"]) && d[0].mark?.file == "--set train.optimizer.lr=-1"
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
