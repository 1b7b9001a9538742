import ArgumentParser
import Foundation
import LetheSpec

struct Schema: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print or write the run-spec JSON Schemas (draft 2020-12).",
        discussion:
            "Editors with yaml-language-server validate specs as you type with `# yaml-language-server: $schema=../schemas/run-spec.schema.json` at the top of a spec."
    )

    @Argument(
        help:
            "Schema file to print (default: run-spec.schema.json). One of: \(EmbeddedSchemas.files.map(\.name).joined(separator: ", "))."
    )
    var name: String = "run-spec.schema.json"

    @Option(help: "Write every schema file into this folder instead of printing.", completion: .directory)
    var write: String?

    @Flag(help: "List the schema files.")
    var list = false

    func run() throws {
        if list {
            EmbeddedSchemas.files.forEach { print($0.name) }
            return
        }
        if let dir = write {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for file in EmbeddedSchemas.files {
                let path = dir + "/" + file.name
                try Data((file.text + "\n").utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
                print("wrote \(path)")
            }
            return
        }
        guard let file = EmbeddedSchemas.files.first(where: { $0.name == name || $0.name == name + ".schema.json" })
        else {
            throw ValidationError("no schema named '\(name)'; try --list")
        }
        print(file.text)
    }
}
