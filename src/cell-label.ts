/** How a cell is named to the operator: its name, or its uuid where its mapping has none (cell_mappings.name is nullable). */
export function cellLabel(cell: { uuid: string; name: string | null }): string {
  return cell.name ?? cell.uuid;
}
